"""A system check that imports every plugin at start-up and names the one that fails."""

from django.core.checks import Error, register


@register()
def plugins_import(app_configs, **kwargs):
    from plugins_app import registry

    try:
        registry.clear_cache()
        registry.all_plugins()
    except Exception as exc:  # any import problem must be shown, with its cause
        return [Error(f"a plugin failed to import: {exc!r}", id="tern.E001")]
    return []

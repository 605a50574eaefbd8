from django.apps import AppConfig


class FlowsAppConfig(AppConfig):
    name = "flows_app"
    verbose_name = "Flows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dataclasses import replace

        from django.conf import settings

        from . import checks  # noqa: F401  (registers the plugin registry check)
        from .engine import budget, inputs, output_size
        from .spec import yamlsource

        tern = settings.TERN
        budget.configure(
            budget.Limits(
                seconds=tern["TEMPLATE_SECONDS"],
                max_chars=tern["TEMPLATE_MAX_CHARS"],
                max_items=tern["TEMPLATE_MAX_ITEMS"],
                built_chars=tern["TEMPLATE_BUILT_CHARS"],
            )
        )
        output_size.configure(tern["OUTPUT_MAX_BYTES"])
        inputs.configure(tern["INPUT_MAX_CHARS"])
        yamlsource.configure(replace(yamlsource.LIMITS, max_bytes=tern["FLOW_SOURCE_MAX_BYTES"]))

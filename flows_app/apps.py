from django.apps import AppConfig


class FlowsAppConfig(AppConfig):
    name = "flows_app"
    verbose_name = "Flows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from . import checks  # noqa: F401  (registers the plugin registry check)
        from .engine import budget

        tern = settings.TERN
        budget.configure(
            budget.Limits(
                seconds=tern["TEMPLATE_SECONDS"],
                max_chars=tern["TEMPLATE_MAX_CHARS"],
                max_items=tern["TEMPLATE_MAX_ITEMS"],
                built_chars=tern["TEMPLATE_BUILT_CHARS"],
            )
        )

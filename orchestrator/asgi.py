"""ASGI entry point (HTTP now; websockets join with the dashboard)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
application = get_asgi_application()

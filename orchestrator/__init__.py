"""Tern's Django project: settings, the Celery app, URLs, ASGI, the `tern` command."""

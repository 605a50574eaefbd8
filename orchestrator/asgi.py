"""ASGI entry point: Django over HTTP, with the admin's static files served unless TERN_SERVE_STATIC=false."""

import os

from django.core.asgi import get_asgi_application

from orchestrator.env import env_bool

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
application = get_asgi_application()

if env_bool("TERN_SERVE_STATIC", True):
    # `tern web` alone, on a laptop or in one container, has no web server in front of it for /static/;
    # a deployment behind one (after `collectstatic`) turns this off.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)

"""ASGI entry point: Django over HTTP (each request on a kept thread: asgi_handler.py), with the admin's
static files served unless TERN_SERVE_STATIC=false."""

import os

import django

from orchestrator.env import env_bool

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does, with our handler

from orchestrator.asgi_handler import KeptThreadsASGIHandler  # noqa: E402 (needs the apps loaded)

application = KeptThreadsASGIHandler()

if env_bool("TERN_SERVE_STATIC", True):
    # `tern web` alone, on a laptop or in one container, has no web server in front of it for /static/;
    # a deployment behind one (after `collectstatic`) turns this off.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)

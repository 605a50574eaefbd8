"""Tern's Django settings: everything from environment variables, with safe embedded defaults."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from .env import SettingError, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("TERN_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)  # the embedded SQLite database lives here

DEBUG = env_bool("TERN_DEBUG", False)
SECRET_KEY = env_str("TERN_SECRET_KEY", "")
if not SECRET_KEY:
    # An embedded default for a laptop; a deployment must set TERN_SECRET_KEY.
    SECRET_KEY = "tern-insecure-local-key-set-TERN_SECRET_KEY-in-production"
ALLOWED_HOSTS = env_list("TERN_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("TERN_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files, not a CDN
    "flows_app",
    "plugins_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "flows_app.api.guard.NulGuard",
]

ROOT_URLCONF = "orchestrator.urls"
WSGI_APPLICATION = "orchestrator.wsgi.application"
ASGI_APPLICATION = "orchestrator.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict:
    url = env_str("DATABASE_URL", "")
    if not url:
        url = f"sqlite:///{DATA_DIR / 'tern.sqlite3'}"
    try:
        # Connections are kept (workers run thousands of tiny steps; a PostgreSQL connect costs more than
        # a step) and checked before reuse.
        db = dj_database_url.parse(url, conn_max_age=env_int("TERN_DB_CONN_MAX_AGE", 300), conn_health_checks=True)
    except Exception as exc:  # dj_database_url raises plain errors on unknown schemes
        raise SettingError(f"DATABASE_URL is not a database URL: {exc}") from None
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE: a transaction takes the write lock when it starts, so two writers queue instead
        # of failing with "database is locked"; WAL lets readers go on meanwhile.
        db["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # Tests use a file, not the default shared in-memory database: task runs execute on threads, and
        # SQLite's shared cache has table locks that ignore the busy timeout.
        # One per test process, so two test runs on one machine do not share (and destroy) one database.
        db.setdefault("TEST", {})["NAME"] = str(DATA_DIR / f"test-{os.getpid()}.sqlite3")
    return db


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [{"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("TERN_LOG_LEVEL", "WARNING")},
}

# ---- The REST API (flows_app/api) -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "flows_app.api.auth.BearerTokenAuthentication",
        "flows_app.api.auth.BasicAuthentication",  # what Kestra's clients send
        "rest_framework.authentication.SessionAuthentication",  # the browser
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "flows_app.api.parsing.YamlSourceParser",
        "flows_app.api.parsing.YamlParser",
        "flows_app.api.parsing.TextYamlParser",
        "flows_app.api.parsing.PlainTextParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "flows_app.api.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "flows_app.api.rendering.LenientNegotiation",
    "URL_FORMAT_OVERRIDE": None,  # `?format=` is an ordinary parameter; the Accept header chooses
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tern API",
    "DESCRIPTION": "Flows, executions, logs and the KV store, on Kestra's paths (`/api/v1/main/...`).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],  # the document too wants credentials
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["flows_app.api.schema.documented_paths"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "flows_app.api.schema.error_responses"],
}
# Bodies the API reads at most (a flow source is at most 1 MB; uploads of FILE inputs stream to disk).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("TERN_API_MAX_BODY_BYTES", 5 * 1024 * 1024)
FILE_UPLOAD_HANDLERS = [
    "flows_app.api.uploads.BoundedUploadHandler",  # refuses a file past TERN_UPLOAD_MAX_BYTES as it arrives
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# ---- Celery over Redis ---------------------------------------------------------------------------
# No REDIS_URL: `tern server local` starts an embedded Redis and sets it for the processes it starts.
REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "redis://127.0.0.1:6379/0"
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # a message is acknowledged once its work is done...
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # ...and goes back to the queue if its worker dies
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("TERN_WORKER_PREFETCH", 4)
CELERY_TASK_DEFAULT_QUEUE = "tern"
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_IGNORE_RESULT = True  # only chord headers keep results (they say so per task)
# One result backend per process, not one per thread: the web's request threads and a worker's pool each
# would build their own (its set-up and a Redis connection). Nothing reads results from several threads at once.
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "flows_app.triggers.beat:TernScheduler"
CELERY_TIMEZONE = "UTC"

# Tern's own settings, in one namespace.
TERN = {
    "DATA_DIR": DATA_DIR,
    "WORK_DIR": Path(env_str("TERN_WORK_DIR", str(DATA_DIR / "work"))),
    # Internal storage for files (task outputs, FILE inputs, downloads), addressed as kestra:///...
    "STORAGE_DIR": Path(env_str("TERN_STORAGE_DIR", str(DATA_DIR / "storage"))),
    "FLOWS_DIR": Path(env_str("TERN_FLOWS_DIR", str(BASE_DIR / "flows"))),
    # "celery" (the server), "inline" (in-process), or the dotted path of a Dispatcher class
    "DISPATCHER": env_str("TERN_DISPATCHER", "celery"),
    "WORKER_CONCURRENCY": env_int("TERN_WORKER_CONCURRENCY", 16),
    "WORKER_POOL": env_str("TERN_WORKER_POOL", "threads"),
    "HEARTBEAT_SECONDS": env_int("TERN_HEARTBEAT_SECONDS", 5),
    "HEARTBEAT_TIMEOUT": env_int("TERN_HEARTBEAT_TIMEOUT", 30),  # a silent task run is reaped after this
    # A reaped task run is sent again to another worker at most this many times, without spending a retry.
    "MAX_RESUBMITS": env_int("TERN_MAX_RESUBMITS", 3),
    # A task run queued longer than this lost its message (a Redis restart, a dead worker's prefetch): sent again.
    "RESEND_AFTER_SECONDS": env_int("TERN_RESEND_AFTER_SECONDS", 120),
    "TICK_SECONDS": env_int("TERN_TICK_SECONDS", 5),
    # When a scheduler starts, a schedule's ticks older than this were missed (recoverMissedSchedules decides);
    # younger ones are only late, and run.
    "SCHEDULE_GRACE_SECONDS": env_int("TERN_SCHEDULE_GRACE_SECONDS", 10),
    # A backfill starts its next tick only while fewer executions of its flow than this have not ended.
    "BACKFILL_MAX_IN_FLIGHT": env_int("TERN_BACKFILL_MAX_IN_FLIGHT", 10),
    # A polling or realtime trigger runs in the `tern triggers` process holding its lease; one killed leaves it
    # to another once this many seconds have passed without a renewal.
    "TRIGGER_LEASE_SECONDS": env_int("TERN_TRIGGER_LEASE_SECONDS", 15),
    # The folders a file trigger may watch, move files to and delete files from (Kestra's `allowed-paths`),
    # separated by the system's path separator (":" on Linux).
    "TRIGGER_ALLOWED_PATHS": [
        p for p in env_str("TERN_TRIGGER_ALLOWED_PATHS", str(DATA_DIR / "files")).split(os.pathsep) if p
    ],
    "LOG_BATCH_SIZE": env_int("TERN_LOG_BATCH_SIZE", 100),
    "INLINE_THREADS": env_int("TERN_INLINE_THREADS", 32),
    # `POST /executions/...?wait=true` answers by then at the latest, with the state reached so far.
    "API_WAIT_SECONDS": env_int("TERN_API_WAIT_SECONDS", 600),
    # What one template render may spend (README "Limits"): beyond it the task fails, naming the limit.
    "TEMPLATE_SECONDS": env_int("TERN_TEMPLATE_SECONDS", 10),
    "TEMPLATE_MAX_CHARS": env_int("TERN_TEMPLATE_MAX_CHARS", 10_000_000),
    "TEMPLATE_MAX_ITEMS": env_int("TERN_TEMPLATE_MAX_ITEMS", 100_000),
    "TEMPLATE_BUILT_CHARS": env_int("TERN_TEMPLATE_BUILT_CHARS", 50_000_000),
    # A task's outputs (as JSON) and a flow's outputs: bigger data belongs in files (outputFiles).
    "OUTPUT_MAX_BYTES": env_int("TERN_OUTPUT_MAX_BYTES", 1_000_000),
    # A log line is cut past this; past LOG_MAX_LINES lines a task run's log goes on in a file in storage.
    "LOG_LINE_MAX_BYTES": env_int("TERN_LOG_LINE_MAX_BYTES", 65_536),
    "LOG_MAX_LINES": env_int("TERN_LOG_MAX_LINES", 10_000),
    # What a flow source, one input value and one uploaded file may weigh.
    "FLOW_SOURCE_MAX_BYTES": env_int("TERN_FLOW_SOURCE_MAX_BYTES", 1_000_000),
    "INPUT_MAX_CHARS": env_int("TERN_INPUT_MAX_CHARS", 1_000_000),
    "UPLOAD_MAX_BYTES": env_int("TERN_UPLOAD_MAX_BYTES", 1_073_741_824),
    # What each process of a script task may use (0: no limit): writable memory (RLIMIT_DATA) and CPU time.
    "SCRIPT_MEMORY_MB": env_int("TERN_SCRIPT_MEMORY_MB", 4096),
    "SCRIPT_CPU_SECONDS": env_int("TERN_SCRIPT_CPU_SECONDS", 0),
}

"""`tern server local`: everything on a laptop in one process — migrate, load the example flows,
create an admin, run executions in-process, and serve the admin on http://127.0.0.1:8080/admin/.

The runtime issue replaces the in-process runner with Celery workers; the command stays the same.
"""
from __future__ import annotations

import secrets
import signal
import sys
import threading
from pathlib import Path


def prepare(flows_dir: Path, out=sys.stdout) -> None:
    """Migrate, load the example flows (invalid ones are reported and skipped), make sure an admin exists."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from flows_app.models import FlowRevision
    from flows_app.services.flows import save_flow
    from flows_app.spec.errors import FlowValidationError

    call_command("migrate", verbosity=0, interactive=False)
    if flows_dir.is_dir():
        for path in sorted(flows_dir.glob("*.y*ml")):
            if FlowRevision.objects.filter(checksum=FlowRevision.checksum_of(path.read_text())).exists():
                continue  # loaded by an earlier start: no new revision at every restart
            try:
                saved = save_flow(path.read_text())
            except FlowValidationError as exc:
                print(f"flows/{path.name}: skipped, invalid:\n{exc}", file=sys.stderr)
                continue
            if saved.created:
                print(f"loaded {saved.flow} (revision {saved.revision.revision}) from {path.name}", file=out)
    users = get_user_model().objects
    if not users.filter(is_superuser=True).exists():
        password = secrets.token_urlsafe(12)
        users.create_superuser("admin", "admin@localhost", password)
        print(f"\n  created the admin user — login: admin  password: {password}\n  (shown once; change it in the admin)\n",
              file=out)


def serve(host: str, port: int, flows_dir: Path) -> int:
    from django.conf import settings
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import WSGIServer, run
    from django.core.wsgi import get_wsgi_application

    from flows_app import dispatch

    prepare(flows_dir)
    runner = dispatch.InlineDispatcher(threads=settings.TERN["INLINE_THREADS"])
    stop = threading.Event()
    dispatch.set_default(runner)
    thread = threading.Thread(target=runner.run_forever, args=(stop,), name="tern-runner", daemon=True)
    thread.start()
    print(f"Tern is running: http://{host}:{port}/admin/  (data in {settings.DATA_DIR}; Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        run(host, port, StaticFilesHandler(get_wsgi_application()), threading=True, server_cls=WSGIServer)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        thread.join(timeout=5)
        runner.close()
        print("Tern stopped.", flush=True)
    return 0


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C

"""The `tern` command: flows (`flow validate`, `flow test`, `flow deploy`), executions on a server (`execution
run`, `execution logs`, see remote.py), processes (`web`, `worker`, `scheduler`, `triggers`, `server local`), API tokens,
and Django's commands under `tern manage`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_PAUSED = 0, 1, 2, 3


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=os.environ.get("TERN_SERVER"), help="the Tern server (TERN_SERVER)")
    parser.add_argument("--token", default=os.environ.get("TERN_TOKEN"), help="an API token (TERN_TOKEN)")


def remotely(command: str):
    """A handler running remote.py's `command`; imported when used: httpx costs every process memory."""

    def handler(args: argparse.Namespace) -> int:
        from orchestrator import remote

        return remote.run(getattr(remote, command), args)

    return handler


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_INVALID
    return args.handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tern", description="Tern, a declarative workflow orchestrator.")
    commands = parser.add_subparsers(dest="command")

    flow = commands.add_parser("flow", help="work with flow files").add_subparsers(dest="flow_command")
    validate = flow.add_parser("validate", help="check flow files; exit 1 if any is invalid (warnings do not count)")
    validate.add_argument("files", nargs="+", type=Path)
    validate.add_argument("--server", help="check on this Tern server (its plugins and rules) instead of here")
    validate.add_argument("--token", default=os.environ.get("TERN_TOKEN"), help="an API token (TERN_TOKEN)")
    validate.set_defaults(handler=cmd_validate)

    deploy = flow.add_parser("deploy", help="make a folder's flows a namespace's flows on a server (GitOps)")
    deploy.add_argument("folder", type=Path, help="a folder of .yml/.yaml flows (searched recursively)")
    deploy.add_argument("--namespace", required=True, help="every flow must be in this namespace")
    deploy.add_argument("--delete", action="store_true", help="delete the namespace's flows that are not in it")
    add_server_options(deploy)
    deploy.set_defaults(handler=remotely("deploy"))

    test = flow.add_parser("test", help="run one flow to its end in this process, on a throwaway database")
    test.add_argument("file", type=Path)
    test.add_argument("--flows", type=Path, help="a directory of other flows (subflows) to load first")
    test.add_argument("--input", action="append", default=[], metavar="KEY=VALUE", help="an input value (repeatable)")
    test.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    test.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    test.set_defaults(handler=cmd_test)

    execution = commands.add_parser("execution", help="executions on a server").add_subparsers(dest="execution_command")
    run = execution.add_parser("run", help="start a flow on a server; with --wait, exit by its final state")
    run.add_argument("namespace")
    run.add_argument("flow")
    run.add_argument(
        "--input", action="append", default=[], metavar="KEY=VALUE", help="an input (KEY=@FILE uploads a file)"
    )
    run.add_argument("--label", action="append", default=[], metavar="KEY:VALUE", help="an execution label")
    run.add_argument("--wait", action="store_true", help="show its task runs as they go; exit 0 on success, 1 else")
    add_server_options(run)
    run.set_defaults(handler=remotely("run_execution"))
    logs = execution.add_parser("logs", help="an execution's log lines; --follow until it ends")
    logs.add_argument("execution", help="the execution's id")
    logs.add_argument("--follow", action="store_true")
    logs.add_argument("--level", choices=["TRACE", "DEBUG", "INFO", "WARN", "ERROR"], help="the lowest level shown")
    add_server_options(logs)
    logs.set_defaults(handler=remotely("logs"))

    plugins = commands.add_parser("plugins", help="the task types Tern knows").add_subparsers(dest="plugins_command")
    plugins.add_parser("list", help="every task type, one per line").set_defaults(handler=cmd_plugins_list)
    plugin_doc = plugins.add_parser("doc", help="a task type's properties, outputs and example")
    plugin_doc.add_argument("type")
    plugin_doc.set_defaults(handler=cmd_plugins_doc)

    web = commands.add_parser("web", help="serve the admin over HTTP (ASGI, uvicorn)")
    add_listen_options(web)
    web.set_defaults(handler=cmd_web)

    worker = commands.add_parser("worker", help="run task runs and advance executions (a Celery worker)")
    worker.add_argument(
        "--queues",
        default="tern",
        help="comma-separated queues to consume (default: tern; a worker group `gpu` is the queue tern.gpu)",
    )
    worker.add_argument("--concurrency", type=int, help="task runs at once (default: TERN_WORKER_CONCURRENCY, 16)")
    worker.add_argument(
        "--pool",
        choices=["threads", "prefork", "solo"],
        help="how task runs are executed (default: TERN_WORKER_POOL, threads)",
    )
    worker.add_argument(
        "--hostname",
        default="tern@%h",
        help="the worker's node name, unique per worker (default: tern@%%h, %%h is the host name)",
    )
    worker.set_defaults(handler=cmd_worker)

    scheduler = commands.add_parser("scheduler", help="send schedule and housekeeping ticks (Celery beat)")
    scheduler.set_defaults(handler=cmd_scheduler)

    triggers = commands.add_parser("triggers", help="run polling and realtime triggers (files, HTTP, message buses)")
    triggers.set_defaults(handler=cmd_triggers)

    server = commands.add_parser("server", help="all processes in one command: `tern server local`")
    server = server.add_subparsers(dest="server_command")
    local = server.add_parser(
        "local", help="web, worker and scheduler in one command, for a laptop (what `make run` starts)"
    )
    add_listen_options(local)
    local.set_defaults(handler=cmd_server_local)
    prepare = server.add_parser(
        "prepare",
        help="migrate, load the flows of TERN_FLOWS_DIR, create the admin (the first step of `tern server local`)",
    )
    prepare.set_defaults(handler=cmd_server_prepare)

    token = commands.add_parser("token", help="API tokens (on this database)").add_subparsers(dest="token_command")
    token_create = token.add_parser("create", help="make an API token for a user; it is printed once")
    token_create.add_argument("username")
    token_create.add_argument("--name", default="cli", help="what the token is for (default: cli)")
    token_create.add_argument("--expires-in", metavar="DURATION", help="an ISO 8601 duration, like P30D")
    token_create.set_defaults(handler=cmd_token_create)
    token_list = token.add_parser("list", help="every token: user, name, prefix, state")
    token_list.set_defaults(handler=cmd_token_list)
    token_revoke = token.add_parser("revoke", help="revoke a token, by its prefix (as `tern token list` shows it)")
    token_revoke.add_argument("prefix")
    token_revoke.set_defaults(handler=cmd_token_revoke)

    manage = commands.add_parser("manage", help="run a Django management command", add_help=False)
    manage.add_argument("rest", nargs=argparse.REMAINDER)
    manage.set_defaults(handler=cmd_manage)
    return parser


def add_listen_options(parser: argparse.ArgumentParser) -> None:
    # String defaults go through `type` only when this command runs: a bad TERN_PORT is reported by
    # `tern web`, and never breaks `tern flow validate`.
    parser.add_argument(
        "--host",
        default=os.environ.get("TERN_HOST", "127.0.0.1"),
        help="address to listen on (default: TERN_HOST, 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("TERN_PORT", "8080"),
        help="port to listen on (default: TERN_PORT, 8080)",
    )


def cmd_validate(args: argparse.Namespace) -> int:
    if args.server:
        return remotely("validate")(args)
    from flows_app.spec.errors import FlowValidationError
    from flows_app.spec.flow import load_flow, read_source

    status = EXIT_OK
    for path in args.files:
        try:
            spec = load_flow(read_source(path))
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
            status = EXIT_FAILED
        except FlowValidationError as exc:
            print(f"{path}: invalid", file=sys.stderr)
            for error in exc.errors:
                print(f"  {error}", file=sys.stderr)
            status = EXIT_FAILED
        else:
            print(f"{path}: valid")
            print_warnings(path, spec.warnings)
    return status


def print_warnings(path: Path, warnings) -> None:
    """What a valid flow says that Tern does not do (yet), one `warning:` line each, on stderr."""
    for warning in warnings:
        print(f"warning: {path}: {warning}", file=sys.stderr)


def cmd_plugins_list(args: argparse.Namespace) -> int:
    from plugins_app.catalogue import catalogue

    print(catalogue())
    return EXIT_OK


def cmd_plugins_doc(args: argparse.Namespace) -> int:
    from plugins_app.catalogue import doc
    from plugins_app.registry import UnknownPlugin

    try:
        print(doc(args.type))
    except UnknownPlugin as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    inputs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--input {pair!r}: write KEY=VALUE")
        inputs[key] = value
    return inputs


def cmd_test(args: argparse.Namespace) -> int:
    try:
        inputs = parse_inputs(args.input)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    if args.flows is not None and not args.flows.is_dir():
        print(f"--flows {args.flows}: not a directory", file=sys.stderr)
        return EXIT_INVALID
    with tempfile.TemporaryDirectory(prefix="tern-flow-test-") as tmp:
        setup_throwaway_django(Path(tmp))
        from flows_app.testrun import InvalidFlow, run_flow_file

        try:
            outcome = run_flow_file(
                args.file,
                inputs,
                args.flows,
                on_log=print_log,
                timeout=args.timeout,
                on_warnings=lambda warnings: print_warnings(args.file, warnings),
            )
        except InvalidFlow as exc:
            print(exc, file=sys.stderr)
            return EXIT_INVALID
        except (TimeoutError, RuntimeError) as exc:  # --timeout reached, or an execution that cannot go on
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        state = outcome.execution.state
        print(f"execution {outcome.execution.id} ended {state}", file=sys.stderr)
        if args.json:
            print(json.dumps(outcome.summary, default=str))
        sys.stdout.flush()
        if state in ("SUCCESS", "WARNING"):
            return EXIT_OK
        return EXIT_PAUSED if state == "PAUSED" else EXIT_FAILED


def print_log(entry) -> None:
    stamp = entry.timestamp.strftime("%H:%M:%S.%f")[:-3]
    task = entry.task_id or "-"
    print(f"{stamp} {entry.level:<5} {task} {entry.message}", flush=True)


def setup_throwaway_django(directory: Path) -> None:
    """Django on a fresh SQLite file in `directory`, migrated."""
    os.environ["DATABASE_URL"] = f"sqlite:///{directory / 'tern.sqlite3'}"
    os.environ["TERN_DATA_DIR"] = str(directory)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def cmd_web(args: argparse.Namespace) -> int:
    from orchestrator.processes import run_web

    return run_web(args.host, args.port)


def cmd_worker(args: argparse.Namespace) -> int:
    from orchestrator.processes import run_worker

    return run_worker(args.queues, args.concurrency, args.pool, args.hostname)


def cmd_scheduler(args: argparse.Namespace) -> int:
    from orchestrator.processes import run_scheduler

    return run_scheduler()


def cmd_triggers(args: argparse.Namespace) -> int:
    from orchestrator.processes import run_triggers

    return run_triggers()


def cmd_server_local(args: argparse.Namespace) -> int:
    # No django.setup() here: the supervisor only reads settings; the work (and the memory) is in its
    # children, starting with `tern server prepare`.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    from orchestrator.local import serve

    return serve(args.host, args.port)


def cmd_server_prepare(args: argparse.Namespace) -> int:
    from django.conf import settings

    from orchestrator.local import prepare
    from orchestrator.processes import setup_django

    setup_django()
    prepare(settings.TERN["FLOWS_DIR"])
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from orchestrator.processes import setup_django

    setup_django()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from flows_app.services import audit, tokens
    from flows_app.spec.durations import DurationError, parse_duration

    user = get_user_model().objects.filter(username=args.username, is_active=True).first()
    if user is None:
        print(f"no active user {args.username!r}", file=sys.stderr)
        return EXIT_FAILED
    expires_at = None
    if args.expires_in:
        try:
            expires_at = timezone.now() + parse_duration(args.expires_in)
        except DurationError:
            print(f"--expires-in {args.expires_in!r}: not a duration (like P30D)", file=sys.stderr)
            return EXIT_INVALID
    token, row = tokens.create_token(user, args.name, expires_at)
    audit.record(None, "token.created", str(row), "cli", owner=user.get_username())
    print(token)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    from orchestrator.processes import setup_django

    setup_django()
    from flows_app.models import ApiToken

    for row in ApiToken.objects.select_related("user").order_by("user__username", "name"):
        state = "revoked" if row.revoked_at else f"expires {row.expires_at:%Y-%m-%d}" if row.expires_at else "live"
        print(f"{row.prefix}…  {row.user.get_username()}  {row.name}  {state}")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from orchestrator.processes import setup_django

    setup_django()
    from flows_app.models import ApiToken
    from flows_app.services import audit, tokens

    rows = list(ApiToken.objects.filter(prefix=args.prefix.rstrip("…"), revoked_at__isnull=True))
    if len(rows) != 1:
        print(f"{len(rows)} live tokens have the prefix {args.prefix!r}: none revoked", file=sys.stderr)
        return EXIT_FAILED
    tokens.revoke(rows[0])
    audit.record(None, "token.revoked", str(rows[0]), "cli", owner=rows[0].user.get_username())
    print(f"revoked {rows[0]}")
    return EXIT_OK


def cmd_manage(args: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["tern manage", *args.rest])
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

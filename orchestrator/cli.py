"""The `tern` command: `tern flow validate`, `tern flow test`, and Django's commands under `tern manage`."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_PAUSED = 0, 1, 2, 3


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
    validate = flow.add_parser("validate", help="check flow files; exit 1 if any is invalid")
    validate.add_argument("files", nargs="+", type=Path)
    validate.set_defaults(handler=cmd_validate)

    test = flow.add_parser("test", help="run one flow to its end in this process, on a throwaway database")
    test.add_argument("file", type=Path)
    test.add_argument("--flows", type=Path, help="a directory of other flows (subflows) to load first")
    test.add_argument("--input", action="append", default=[], metavar="KEY=VALUE", help="an input value (repeatable)")
    test.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    test.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    test.set_defaults(handler=cmd_test)

    server = commands.add_parser("server", help="run Tern's processes").add_subparsers(dest="server_command")
    local = server.add_parser("local", help="everything in one command, for a laptop (what `make run` starts)")
    local.add_argument("--host", default=os.environ.get("TERN_HOST", "127.0.0.1"))
    local.add_argument("--port", type=int, default=int(os.environ.get("TERN_PORT", "8080")))
    local.set_defaults(handler=cmd_server_local)

    manage = commands.add_parser("manage", help="run a Django management command", add_help=False)
    manage.add_argument("rest", nargs=argparse.REMAINDER)
    manage.set_defaults(handler=cmd_manage)
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    from flows_app.spec.errors import FlowValidationError
    from flows_app.spec.flow import load_flow

    status = EXIT_OK
    for path in args.files:
        try:
            load_flow(path.read_text())
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
    return status


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
            outcome = run_flow_file(args.file, inputs, args.flows, on_log=print_log, timeout=args.timeout)
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


def cmd_server_local(args: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django
    from django.conf import settings

    django.setup()
    from orchestrator.local import serve

    return serve(args.host, args.port, settings.TERN["FLOWS_DIR"])


def cmd_manage(args: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["tern manage", *args.rest])
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""The `tern` commands that talk to a Tern server through its API: `flow deploy`, `flow validate --server`,
`execution run`, `execution logs`. The server and token come from `--server`/`--token` or `TERN_SERVER`/
`TERN_TOKEN`. Every failure is one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
FLOW_SUFFIXES = (".yml", ".yaml")


class RemoteError(Exception):
    """What went wrong, in one line."""


class Api:
    def __init__(self, server: str | None, token: str | None):
        if not server:
            raise RemoteError("no server: give --server URL or set TERN_SERVER")
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(
            base_url=self.server + "/api/v1/main", headers=headers, timeout=httpx.Timeout(30, read=None)
        )

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.server}: {exc}") from None
        if response.status_code == 401:
            raise RemoteError(f"{self.server}: credentials refused (give --token or set TERN_TOKEN)")
        if response.status_code >= 400:
            raise RemoteError(f"{self.server}: {response.status_code} {_message(response)}")
        return response

    def events(self, path: str) -> Iterator[tuple[str, str]]:
        """(event, data) pairs of a server-sent event stream, until it ends."""
        try:
            with self.client.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise RemoteError(f"{self.server}: {response.status_code} {_message(response)}")
                event, data = None, []
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and event:
                        yield event, "\n".join(data)
                        event, data = None, []
        except httpx.HTTPError as exc:
            raise RemoteError(f"lost {self.server}: {exc}") from None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    message = str(body.get("message", body))
    placed = [e for e in body.get("errors") or [] if e.get("path") and f"{e['path']}: " not in message]
    return message + "".join(f"\n  {e['path']}: {e.get('message')}" for e in placed)


def run(handler, args: argparse.Namespace) -> int:
    try:
        return handler(Api(args.server, args.token), args)
    except RemoteError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"{exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID


# ---- flows ----------------------------------------------------------------------------------------


def flow_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise RemoteError(f"{folder}: not a directory")
    return sorted(p for p in folder.rglob("*") if p.suffix in FLOW_SUFFIXES and p.is_file())


def deploy(api: Api, args: argparse.Namespace) -> int:
    """Save the folder's flows as the namespace's; with --delete, delete the namespace's other flows."""
    files = flow_files(args.folder)
    if not files:
        raise RemoteError(f"{args.folder}: no .yml or .yaml flow files")
    body = "\n---\n".join(path.read_text() for path in files)
    try:
        response = api.call(
            "POST",
            f"/flows/{args.namespace}",
            params={"delete": "true" if args.delete else "false"},
            content=body.encode(),
            headers={"Content-Type": "application/x-yaml"},
        )
    except RemoteError as exc:
        raise RemoteError(_with_file_names(str(exc), files)) from None
    for flow in response.json():
        print(f"deployed {flow['namespace']}.{flow['id']} (revision {flow['revision']})")
    return EXIT_OK


def _with_file_names(message: str, files: list[Path]) -> str:
    """`[2].tasks[0].type: ...` names the third file: say which."""
    for index, path in enumerate(files):
        message = message.replace(f"  [{index}].", f"  {path}: ")
    return message


def validate(api: Api, args: argparse.Namespace) -> int:
    """Check flow files on the server (its plugins, its version of the rules); exit 1 if one is invalid."""
    status = EXIT_OK
    for path in args.files:
        answers = api.call(
            "POST", "/flows/validate", content=path.read_text().encode(), headers={"Content-Type": "application/x-yaml"}
        ).json()
        for answer in answers:
            if answer.get("constraints"):
                status = EXIT_FAILED
                print(f"{path}: invalid", file=sys.stderr)
                for error in answer.get("errors", []):
                    line = f" (line {error['line']})" if error.get("line") else ""
                    print(f"  {error['path']}: {error['message']}{line}", file=sys.stderr)
            else:
                print(f"{path}: valid")
                for warning in answer.get("warnings", []):
                    print(f"warning: {path}: {warning}", file=sys.stderr)
    return status


# ---- executions -----------------------------------------------------------------------------------

FINAL = {"SUCCESS": EXIT_OK, "WARNING": EXIT_OK, "FAILED": EXIT_FAILED, "KILLED": EXIT_FAILED}


def parse_inputs(pairs: list[str]) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """KEY=VALUE as a form field; KEY=@PATH as a file (a FILE input)."""
    fields, files = {}, {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RemoteError(f"--input {pair!r}: write KEY=VALUE (or KEY=@FILE)")
        if value.startswith("@"):
            path = Path(value[1:])
            files[key] = (path.name, path.read_bytes())
        else:
            fields[key] = value
    return fields, files


def run_execution(api: Api, args: argparse.Namespace) -> int:
    fields, files = parse_inputs(args.input)
    params = [("labels", label) for label in args.label]
    started = api.call(
        "POST", f"/executions/{args.namespace}/{args.flow}", params=params, data=fields, files=files or None
    ).json()
    print(f"started execution {started['id']} of {args.namespace}.{args.flow}")
    if not args.wait:
        return EXIT_OK
    seen: dict[str, str] = {}
    state = started["state"]["current"]
    for event, data in api.events(f"/executions/{started['id']}/follow"):
        execution = json.loads(data)
        for run in execution.get("taskRunList") or []:
            now = run["state"]["current"]
            if seen.get(run["id"]) != now:
                seen[run["id"]] = now
                value = f" [{run['value']}]" if run.get("value") else ""
                print(f"  {run['taskId']}{value} {now}", flush=True)
        state = execution["state"]["current"]
        if event == "end":
            break
    print(f"execution {started['id']} ended {state}")
    return FINAL.get(state, EXIT_FAILED)


def logs(api: Api, args: argparse.Namespace) -> int:
    params = {"minLevel": args.level} if args.level else {}
    if not args.follow:
        for line in api.call("GET", f"/logs/{args.execution}", params=params).json():
            print(_log_line(line))
        return EXIT_OK
    query = f"?minLevel={args.level}" if args.level else ""
    for event, data in api.events(f"/logs/{args.execution}/follow{query}"):
        if event == "end":
            break
        print(_log_line(json.loads(data)), flush=True)
    return EXIT_OK


def _log_line(line: dict[str, Any]) -> str:
    return f"{line['timestamp']} {line['level']:<5} {line.get('taskId') or '-'} {line['message']}"

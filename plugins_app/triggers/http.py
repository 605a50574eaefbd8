"""Kestra's HTTP Trigger (`io.kestra.plugin.core.http.Trigger`): every `interval` the URL is called, and an
execution starts when the response meets `responseCondition` (by default a status below 400).

The request takes the Request task's properties (plugins_app/core/http.py); the execution gets the
response as `trigger.code`, `trigger.headers`, `trigger.body` and `trigger.uri`, Kestra's Request output.
An unreachable URL fails the trigger (recorded in its state, backed off); an answer of any status is a
response for the condition to judge, as in Kestra.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from flows_app.engine.vocabulary import truthy
from plugins_app.base import PluginError
from plugins_app.core.http import MAX_BODY, HttpProperties, _client, _headers, _send

from .base import Event, Source, SourceError

DEFAULT_CONDITION = "{{ response.statusCode < 400 }}"


class _NoDeadline:
    timeout = None  # the request's own timeouts (options) bound it


class HttpSource(Source):
    def __init__(self, properties, context):
        super().__init__(properties, context)
        request = {k: v for k, v in properties.items() if k not in ("responseCondition", "encryptBody", "auth")}
        if properties.get("auth") is not None:  # Kestra 1.x moved `options.auth` to the top level
            request["options"] = {**(request.get("options") or {}), "auth": properties["auth"]}
        request.pop("interval", None)
        try:
            self.request = HttpProperties(**request, allowFailed=True)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SourceError(f"the request's properties: {problems}") from None
        self.condition = properties.get("responseCondition") or DEFAULT_CONDITION

    def poll(self) -> list[Event]:
        try:
            with _client(self.request, _NoDeadline()) as client:
                response = _send(client, self.request)
        except PluginError as exc:
            raise SourceError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise SourceError(f"{self.request.method} {self.request.uri}: {exc}") from None
        if len(response.content) > MAX_BODY:
            raise SourceError(f"{self.request.uri}: its body of {len(response.content)} bytes is over {MAX_BODY}")
        headers = _headers(response)
        if not self._holds({"statusCode": response.status_code, "body": response.text, "headers": headers}):
            return []
        variables = {"uri": str(response.url), "code": response.status_code, "headers": headers}
        variables["body"] = response.text
        return [Event(variables)]

    def _holds(self, response: dict[str, Any]) -> bool:
        try:
            return truthy(self.context.render(self.condition, {"response": response}))
        except Exception as exc:
            raise SourceError(f"responseCondition: {exc}") from None

"""HTTP Request and Download, with httpx: the response as outputs, or the body into internal storage."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
from pydantic import BaseModel, ConfigDict

from flows_app.engine.vocabulary import DurationError, parse_duration
from plugins_app.base import PluginError, Properties, RunnablePlugin, prop

MAX_BODY = 10 * 1024 * 1024  # Kestra's default limit for a body kept as an output


class Auth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["BASIC", "BEARER"] = "BASIC"
    username: str | None = None
    password: str | None = None
    token: str | None = None


class SslOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    insecureTrustAllCertificates: bool = False


class Options(BaseModel):
    model_config = ConfigDict(extra="allow")  # Kestra has more tuning knobs; unknown ones are accepted
    connectTimeout: str | None = None
    readTimeout: str | None = None
    followRedirects: bool = True
    basicAuthUser: str | None = None
    basicAuthPassword: str | None = None
    auth: Auth | None = None
    maxContentLength: int | None = None


class HttpProperties(Properties):
    uri: str = prop(description="The URL (http or https).")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = prop("GET", description="The method.")
    headers: dict[str, Any] = prop({}, description="Request headers.")
    body: str | dict[str, Any] | list[Any] | None = prop(None, description="The request body (a map is sent as JSON).")
    formData: dict[str, Any] | None = prop(None, description="Form fields (urlencoded, or multipart).")
    contentType: str | None = prop(
        None, description="The Content-Type; multipart/form-data sends formData as multipart."
    )
    options: Options = prop(Options(), description="Timeouts, redirects, authentication, size limit.")
    sslOptions: SslOptions = prop(SslOptions(), description="TLS options.")
    allowFailed: bool = prop(False, description="Do not fail on a 4xx/5xx answer.")


class Request(RunnablePlugin):
    """Send an HTTP request; outputs the status code, headers and body."""

    type = "io.kestra.plugin.core.http.Request"
    aliases = ("io.kestra.plugin.fs.http.Request",)
    outputs = {
        "code": "The HTTP status code.",
        "headers": "Response headers (name -> list of values).",
        "body": "The response body as text.",
    }
    example = """
- id: call
  type: io.kestra.plugin.core.http.Request
  uri: https://example.com/api/items
  method: POST
  body: '{"name": "{{ inputs.name }}"}'
  contentType: application/json
"""
    Properties = HttpProperties

    def run(self, props, ctx):
        with _client(props, ctx) as client:
            response = _send(client, props)
        body = response.content
        limit = props.options.maxContentLength or MAX_BODY
        if len(body) > limit:
            raise PluginError(
                f"response body of {len(body)} bytes is over the {limit}-byte limit; use Download", retryable=False
            )
        outputs = {"code": response.status_code, "headers": _headers(response), "body": response.text}
        _check_status(props, response, outputs)
        return outputs


class Download(RunnablePlugin):
    """Download a URL into internal storage; outputs its `uri`, `code`, `length` and `headers`."""

    type = "io.kestra.plugin.core.http.Download"
    aliases = ("io.kestra.plugin.fs.http.Download",)
    outputs = {
        "uri": "The kestra:/// URI of the downloaded file.",
        "code": "The HTTP status code.",
        "length": "Its size in bytes.",
        "headers": "Response headers.",
    }
    example = """
- id: fetch
  type: io.kestra.plugin.core.http.Download
  uri: https://example.com/data.csv
"""
    Properties = HttpProperties

    def run(self, props, ctx):
        name = PurePosixPath(urlparse(props.uri).path).name or "download"
        with tempfile.NamedTemporaryFile(delete=False) as handle:
            temp = Path(handle.name)
        try:
            with _client(props, ctx) as client, client.stream(props.method, props.uri, **_payload(props)) as response:
                with temp.open("wb") as out:
                    for chunk in response.iter_bytes():
                        if ctx.should_stop():
                            raise PluginError("killed", retryable=False)
                        out.write(chunk)
            outputs = {"code": response.status_code, "headers": _headers(response), "length": temp.stat().st_size}
            _check_status(props, response, outputs)
            outputs["uri"] = ctx.storage_put(temp, name)
            return outputs
        except httpx.HTTPError as exc:
            raise PluginError(f"{props.method} {props.uri}: {exc}") from None
        finally:
            temp.unlink(missing_ok=True)


def _client(props: HttpProperties, ctx) -> httpx.Client:
    options = props.options
    timeout = httpx.Timeout(_seconds(options.readTimeout, 10.0), connect=_seconds(options.connectTimeout, 10.0))
    if ctx.timeout is not None:
        timeout = httpx.Timeout(min(ctx.timeout, timeout.read or ctx.timeout), connect=timeout.connect)
    auth = None
    if options.auth is not None and options.auth.type == "BASIC":
        auth = httpx.BasicAuth(options.auth.username or "", options.auth.password or "")
    elif options.basicAuthUser is not None:
        auth = httpx.BasicAuth(options.basicAuthUser, options.basicAuthPassword or "")
    headers = {k: str(v) for k, v in props.headers.items()}
    if options.auth is not None and options.auth.type == "BEARER":
        headers["Authorization"] = f"Bearer {options.auth.token}"
    return httpx.Client(
        timeout=timeout,
        auth=auth,
        headers=headers,
        follow_redirects=options.followRedirects,
        verify=not props.sslOptions.insecureTrustAllCertificates,
    )


def _payload(props: HttpProperties) -> dict[str, Any]:
    headers = {"Content-Type": props.contentType} if props.contentType and props.formData is None else {}
    if props.formData is not None:
        fields = {k: str(v) for k, v in props.formData.items()}
        if props.contentType == "multipart/form-data":
            return {"files": {k: (None, v) for k, v in fields.items()}}
        return {"data": fields}
    if isinstance(props.body, (dict, list)):
        return {"json": props.body, "headers": headers}
    if props.body is not None:
        return {"content": props.body.encode(), "headers": headers}
    return {"headers": headers}


def _send(client: httpx.Client, props: HttpProperties) -> httpx.Response:
    try:
        return client.request(props.method, props.uri, **_payload(props))
    except httpx.HTTPError as exc:
        raise PluginError(f"{props.method} {props.uri}: {exc}") from None


def _check_status(props: HttpProperties, response: httpx.Response, outputs: dict[str, Any]) -> None:
    if response.status_code >= 400 and not props.allowFailed:
        raise PluginError(
            f"{props.method} {props.uri} answered {response.status_code}",
            outputs=outputs,
            retryable=response.status_code >= 500 or response.status_code == 429,
        )


def _headers(response: httpx.Response) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _seconds(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_duration(value).total_seconds()
    except DurationError as exc:
        raise PluginError(f"options: {exc}", retryable=False) from None

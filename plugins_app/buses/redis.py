"""Redis tasks under Kestra's names: ListPush, ListPop and pub/sub Publish; and the connection and serde
helpers the Redis trigger sources (plugins_app/triggers/redis.py) share with them.

redis-py is imported inside the functions: every worker imports all task classes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from flows_app.engine.vocabulary import DurationError, parse_duration
from plugins_app.base import PluginError, Properties, RunnablePlugin, prop

SerdeType = Literal["STRING", "JSON"]


# ---- shared with the trigger sources ------------------------------------------------------------------


def connect(url: str, timeout: float = 10.0):
    """A redis-py client (bytes in, bytes out) for a Kestra Redis URL: `redis://`, `rediss://`, and the
    socket forms `unix://`, `redis+socket://` (Celery's), `redis-socket://` (Lettuce's)."""
    import redis

    for scheme in ("redis+socket://", "redis-socket://"):
        if url.startswith(scheme):
            url = "unix://" + url[len(scheme) :]
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=timeout)
    except ValueError as exc:
        raise ValueError(f"'{server_name(url)}' is not a Redis URL: {exc}") from None


def server_name(url: str) -> str:
    """Where a URL points, without its password: `127.0.0.1:6379/0`, or a socket's path."""
    parts = urlsplit(url)
    if parts.scheme in ("unix", "redis+socket", "redis-socket"):
        return parts.path or url
    try:
        port = parts.port or 6379
    except ValueError:
        return parts.hostname or "?"
    return f"{parts.hostname or 'localhost'}:{port}{parts.path if parts.path not in ('', '/') else ''}"


def decode(serde: str, raw: bytes | str) -> Any:
    """A message body as Kestra's SerdeType reads it: the text (STRING), or the JSON value it holds."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return json.loads(text) if serde == "JSON" else text


def encode(serde: str, value: Any) -> str:
    """A value as Kestra's SerdeType writes it. JSON: a string that is JSON already is sent as is, any
    other value as JSON (Kestra refuses a string that is not JSON; we quote it). STRING: a string as is,
    any other value as JSON (Kestra writes Java's toString, `{a=1}`, which nothing can read back)."""
    if isinstance(value, str):
        if serde != "JSON":
            return value
        try:
            json.loads(value)
            return value
        except ValueError:
            pass
    return json.dumps(value, default=str, ensure_ascii=False)


def serde_of(value: Any) -> str:
    serde = str(value or "STRING").upper()
    if serde not in ("STRING", "JSON"):
        raise ValueError(f"serdeType '{value}' is not one of STRING, JSON")
    return serde


# ---- tasks ---------------------------------------------------------------------------------------------


class _Connection(Properties):
    url: str = prop(description="The Redis URL, e.g. redis://:password@localhost:6379/0.")
    serdeType: SerdeType = prop("STRING", description="How values are written and read: STRING or JSON.")


def _values(source: Any, ctx, *, json_list: bool) -> Iterator[Any]:
    """Kestra's `from`: a kestra:/// URI of an ION file (Tern writes one JSON value a line), a list, or one
    value. `json_list`: a string holding a JSON array is that list (ListPush's reading)."""
    if isinstance(source, str) and source.startswith("kestra://"):
        if ctx.storage_path is None:
            raise PluginError("from: this task cannot read internal storage here", retryable=False)
        path = Path(ctx.storage_path(source))
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        raise PluginError(f"from: line {number} of {source} is not JSON", retryable=False) from None
        return
    if isinstance(source, str) and json_list and source.lstrip().startswith("["):
        try:
            parsed = json.loads(source)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            source = parsed
    if isinstance(source, (list, tuple)):
        yield from source
    else:
        yield source


def _batches(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _failure(url: str, exc: Exception) -> PluginError:
    """A PluginError naming the server; a connection problem may pass, a refused command will not."""
    import redis

    transient = isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) and not isinstance(
        exc, redis.AuthenticationError
    )
    return PluginError(f"Redis {server_name(url)}: {exc}", retryable=transient)


def _client(url: str):
    try:
        return connect(url)
    except ValueError as exc:
        raise PluginError(str(exc), retryable=False) from None


class ListPush(RunnablePlugin):
    """Push values to the head of a Redis list (LPUSH), from a list, one value, or an internal storage file."""

    type = "io.kestra.plugin.redis.list.ListPush"
    aliases = ("io.kestra.plugin.redis.ListPush",)
    outputs = {"count": "The number of values pushed."}
    example = """
- id: push
  type: io.kestra.plugin.redis.list.ListPush
  url: redis://localhost:6379/0
  key: orders
  serdeType: JSON
  from:
    - {"id": 1}
    - {"id": 2}
"""

    class Properties(_Connection):
        key: str = prop(description="The list's key.")
        from_: Any = prop(alias="from", description="A list, one value, or a kestra:/// URI of an ION file.")
        batchSize: int = prop(500, ge=1, description="Values sent per LPUSH command.")

    def run(self, props, ctx):
        import redis

        client = _client(props.url)
        count = 0
        try:
            values = (encode(props.serdeType, v) for v in _values(props.from_, ctx, json_list=True))
            for batch in _batches(values, props.batchSize):
                client.lpush(props.key, *batch)  # one variadic LPUSH keeps the batch's order
                count += len(batch)
        except redis.RedisError as exc:
            raise _failure(props.url, exc) from None
        finally:
            client.close()
        return {"count": count}


class ListPop(RunnablePlugin):
    """Pop values from the head of a Redis list (LPOP) into an internal storage file, until the list is
    empty, `maxRecords` values, or `maxDuration` (one of the two must be set, as in Kestra)."""

    type = "io.kestra.plugin.redis.list.ListPop"
    aliases = ("io.kestra.plugin.redis.ListPop",)
    outputs = {"count": "The number of values popped.", "uri": "A file of them, one value a line (ION)."}
    example = """
- id: pop
  type: io.kestra.plugin.redis.list.ListPop
  url: redis://localhost:6379/0
  key: orders
  serdeType: JSON
  maxRecords: 100
"""

    class Properties(_Connection):
        key: str = prop(description="The list's key.")
        maxRecords: int | None = prop(None, ge=1, description="Stop after this many values.")
        maxDuration: str | None = prop(None, description="Stop after this long, e.g. PT10S.")
        count: int = prop(100, ge=1, description="Values popped per LPOP command.")

    def run(self, props, ctx):
        import redis

        if props.maxRecords is None and props.maxDuration is None:
            raise PluginError("maxDuration or maxRecords must be set to avoid an endless loop", retryable=False)
        try:
            deadline = (
                time.monotonic() + parse_duration(props.maxDuration).total_seconds() if props.maxDuration else None
            )
        except DurationError as exc:
            raise PluginError(f"maxDuration: {exc}", retryable=False) from None
        client = _client(props.url)
        path = Path(ctx.working_dir) / "pop.ion"
        total = 0
        try:
            with path.open("w", encoding="utf-8") as out:
                while True:
                    want = props.count if props.maxRecords is None else min(props.count, props.maxRecords - total)
                    popped = client.lpop(props.key, want) or []
                    for raw in popped:
                        try:
                            value = decode(props.serdeType, raw)
                        except ValueError:
                            raise PluginError(
                                f"a value of {props.key} is not JSON: {raw[:80]!r}", retryable=False
                            ) from None
                        out.write(json.dumps(value, default=str, ensure_ascii=False) + "\n")
                    total += len(popped)
                    if len(popped) < want or (props.maxRecords is not None and total >= props.maxRecords):
                        break
                    if (deadline is not None and time.monotonic() >= deadline) or ctx.should_stop():
                        break
        except redis.RedisError as exc:
            raise _failure(props.url, exc) from None
        finally:
            client.close()
        ctx.log("INFO", f"popped {total} values from {props.key}")
        return {"count": total, "uri": ctx.storage_put(path, "pop.ion")}


class Publish(RunnablePlugin):
    """Publish values to a Redis pub/sub channel, from a list, one value, or an internal storage file.
    Only subscribers listening at that moment receive them: Redis keeps no pub/sub message."""

    type = "io.kestra.plugin.redis.pubsub.Publish"
    aliases = ("io.kestra.plugin.redis.Publish",)
    outputs = {"count": "The number of values published."}
    example = """
- id: publish
  type: io.kestra.plugin.redis.pubsub.Publish
  url: redis://localhost:6379/0
  channel: orders
  from:
    - first
    - second
"""

    class Properties(_Connection):
        channel: str = prop(description="The channel.")
        from_: Any = prop(alias="from", description="A list, one value, or a kestra:/// URI of an ION file.")

    def run(self, props, ctx):
        import redis

        client = _client(props.url)
        count = 0
        try:
            values = (encode(props.serdeType, v) for v in _values(props.from_, ctx, json_list=False))
            for batch in _batches(values, 500):
                pipe = client.pipeline(transaction=False)  # one round trip per batch, still in order
                for value in batch:
                    pipe.publish(props.channel, value)
                pipe.execute()
                count += len(batch)
        except redis.RedisError as exc:
            raise _failure(props.url, exc) from None
        finally:
            client.close()
        return {"count": count}

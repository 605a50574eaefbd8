"""Django's ASGI handler, with each request's sync code on a kept thread instead of a new one, and in one go.

Django runs a request's sync parts (middleware, DRF views, the ORM) on a thread made for that request and
thrown away after it. Whatever a thread keeps is lost with it: its database connection (so CONN_MAX_AGE
cannot work, and each request connects again; on PostgreSQL that costs more than the request) and Celery's
producer. Here a request borrows one of the threads that earlier requests used (asgiref's
`ThreadSensitiveContext(executor=...)` is made for this) and gives it back when it is done; one thread still
serves one request at a time, as in Django.

And the middleware chain is built as for WSGI, sync from the first middleware to the view, and run with one
hop to that thread. Django's async chain, with sync middleware and views (all of Tern's), hops between
the event loop and the thread three times or more per request (each a few hundred microseconds). Views
that stream (server-sent events) still stream from the event loop: an async iterator is sent as such.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

# Idle threads kept at most (each keeps its database connection: on PostgreSQL, one per kept thread); a
# burst beyond them gets threads that end, with their connections, once it has passed.
KEPT = 8


class KeptThreadsASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.load_middleware(is_async=False)  # the sync chain, WSGI's (see the module's docstring)
        self.idle: list[ThreadPoolExecutor] = []  # only touched on the event loop's thread

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.idle.pop() if self.idle else ThreadPoolExecutor(1, thread_name_prefix="tern-web")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(self.idle) < KEPT:
                self.idle.append(executor)
            else:
                executor.shutdown(wait=False)

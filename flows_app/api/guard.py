"""Refuse what no database takes: a NUL character (PostgreSQL stores none, in text or JSON). An API request
with one in its path, its parameters or a text body is a 400 that names the place, before any view runs;
a text body past TERN_API_MAX_BODY_BYTES is a 413."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

from .errors import body, too_big_message

TEXT_BODIES = (
    "application/json",
    "application/x-yaml",
    "application/yaml",
    "text/",
    "application/x-www-form-urlencoded",
)
JSON_NUL = re.compile(rb"\\u0000", re.IGNORECASE)


class NulGuard:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith("/api/"):
            try:
                place = self._nul_in(request)
            except RequestDataTooBig:
                return JsonResponse(body(too_big_message(), []), status=413)
            if place:
                message = f"{place}: a NUL character is not allowed"
                return JsonResponse(body(message, [{"path": place, "message": "a NUL character"}]), status=400)
        return self.get_response(request)

    def _nul_in(self, request) -> str | None:
        if "\x00" in request.path_info:
            return "path"
        if b"\x00" in unquote_to_bytes(request.META.get("QUERY_STRING", "")):
            return "query"
        content_type = request.META.get("CONTENT_TYPE", "")
        if content_type.startswith(TEXT_BODIES):
            data = request.body  # read once; Django keeps it for the view
            if b"\x00" in data or (content_type.startswith("application/json") and JSON_NUL.search(data)):
                return "body"
        return None

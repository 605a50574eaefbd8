"""One shape for every error the API answers (Kestra's, so its clients show the message):

    {"message": "Invalid flow", "errors": [{"path": "tasks[0].type", "message": "..."}],
     "_embedded": {"errors": [...the same list...]}}

`errors` is the list; `_embedded.errors` carries it where Kestra's clients look for it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from flows_app.engine.inputs import InputsError
from flows_app.spec.errors import FlowValidationError, format_path


class ApiError(exceptions.APIException):
    """An error with a message and the places it is about."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None, status_code: int = 400):
        super().__init__(message)
        self.message, self.errors, self.status_code = message, errors or [], status_code


def invalid(message: str, path: str = "", status_code: int = 422) -> ApiError:
    return ApiError(message, [{"path": path, "message": message}] if path else [], status_code)


def not_found(what: str) -> ApiError:
    return ApiError(f"{what} not found", status_code=status.HTTP_404_NOT_FOUND)


def flow_errors(exc: FlowValidationError) -> list[dict[str, Any]]:
    return [
        {"path": format_path(e.path), "message": e.message, **({"line": e.line} if e.line else {})} for e in exc.errors
    ]


def body(message: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"message": message, "errors": errors, "_embedded": {"errors": errors}}


def _flatten(detail: Any, path: str = "") -> list[dict[str, str]]:
    """DRF's nested validation details as a flat list of {path, message}."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            where = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            found += _flatten(value, where)
        return found
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"path": path, "message": str(item)} for item in detail]
        found = []
        for index, item in enumerate(detail):
            found += _flatten(item, f"{path}[{index}]")
        return found
    return [{"path": path, "message": str(detail)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, FlowValidationError):
        errors = flow_errors(exc)
        return Response(body(f"Invalid flow: {errors[0]['path']}: {errors[0]['message']}", errors), status=422)
    if isinstance(exc, InputsError):
        errors = [_input_error(line) for line in exc.errors]
        return Response(body(f"Invalid inputs: {'; '.join(exc.errors)}", errors), status=422)
    if isinstance(exc, RequestDataTooBig):  # an upload past its limit, or a form's fields past the body's
        field, message = getattr(exc, "field", ""), getattr(exc, "message", too_big_message())
        return Response(body(message, [{"path": field, "message": message}] if field else []), status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django answers 500 and logs it
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = f"{exc.wait:.0f}"
    set_rollback()
    if isinstance(exc, ApiError):
        return Response(body(exc.message, exc.errors), status=exc.status_code, headers=headers)
    if isinstance(exc.detail, (dict, list)):
        errors = _flatten(exc.detail)
        message = "; ".join(f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in errors)
        return Response(body(message or "Invalid request", errors), status=exc.status_code, headers=headers)
    return Response(body(str(exc.detail), []), status=exc.status_code, headers=headers)


def too_big_message() -> str:
    return f"the request body is more than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes (TERN_API_MAX_BODY_BYTES)"


def _input_error(line: str) -> dict[str, str]:
    """`inputs.name: ...` or `name: ...` → {path: inputs.name, message: ...}."""
    head, sep, rest = line.partition(": ")
    if sep and " " not in head:
        return {"path": head if head.startswith("inputs") else f"inputs.{head}", "message": rest}
    return {"path": "inputs", "message": line}

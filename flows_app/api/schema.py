"""The OpenAPI document describes the tenant paths (`/api/v1/main/...`); the same routes without the tenant
answer too, undocumented, for Kestra 0.x's clients."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

DOCUMENTED = ("/api/v1/main/", "/api/v1/plugins", "/health", "/metrics")


def documented_paths(endpoints):
    return [e for e in endpoints if e[0].startswith(DOCUMENTED)]


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "flows_app.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "an API token (`tern token create`)"}


class BasicScheme(OpenApiAuthenticationExtension):
    target_class = "flows_app.api.auth.BasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic"}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["message", "errors"],
    "properties": {
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}, "line": {"type": "integer"}},
            },
        },
        "_embedded": {"type": "object"},
    },
}
ERRORS = {
    "400": "A bad parameter or body",
    "401": "No credentials, or wrong ones",
    "403": "Seen, but not yours to change",
    "404": "Not found, or not yours to see",
    "405": "Not a method of this path",
    "406": "No answer in the media type asked for",
    "409": "In conflict with the current state",
    "415": "A body of a media type not read here",
    "422": "An invalid flow, input or value",
}


def error_responses(result, generator, request, public):
    """Every operation may answer the error shape (errors.py) with these codes: say so in the document."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, text in ERRORS.items():
                if code == "401" and operation.get("security") == [{}]:
                    continue  # webhooks and /health want no credentials
                responses.setdefault(
                    code,
                    {
                        "description": text,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result

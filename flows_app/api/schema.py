"""The OpenAPI document describes the tenant paths (`/api/v1/main/...`); the same routes without the tenant
answer too, undocumented, for Kestra 0.x's clients."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


def tenant_paths_only(endpoints):
    return [e for e in endpoints if e[0].startswith("/api/v1/main/")]


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

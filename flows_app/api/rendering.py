"""How answers are written: JSON; a flow's source as YAML, exactly as saved (`Accept: application/x-yaml`); text."""

from __future__ import annotations

import yaml
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer


class YamlSourceRenderer(BaseRenderer):
    media_type = "application/x-yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, str):
            return data.encode()
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()


class PlainTextRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, str):
            return data.encode()
        if isinstance(data, dict) and "message" in data:  # an error
            return str(data["message"]).encode()
        return str(data).encode()


class LenientNegotiation(DefaultContentNegotiation):
    """An Accept header no renderer satisfies gets the view's first renderer (JSON, for most), not a 406:
    clients send `Accept: application/octet-stream` or `text/plain` for answers Kestra sends as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type

"""Bodies that are text: a flow's YAML source (kept byte for byte, comments included) and plain text."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


class _TextParser(BaseParser):
    def parse(self, stream, media_type=None, parser_context=None) -> str:
        data = stream.read() if stream is not None else b""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"the body is not UTF-8 text (byte {exc.start})") from None


class YamlSourceParser(_TextParser):
    media_type = "application/x-yaml"


class YamlParser(_TextParser):
    media_type = "application/yaml"


class TextYamlParser(_TextParser):
    media_type = "text/yaml"


class PlainTextParser(_TextParser):
    media_type = "text/plain"

"""Flow descriptions as HTML: Markdown as Kestra renders it, with no raw HTML from the YAML let through."""

from __future__ import annotations

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# `html: False` escapes any HTML written in the source; markdown-it's link check drops javascript:,
# vbscript:, file: and data: links (they stay as text).
_RENDERER = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(text: str | None) -> SafeString:
    return mark_safe(_RENDERER.render(text or ""))

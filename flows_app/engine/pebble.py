"""Rewrites Kestra's Pebble template syntax into Jinja2 source (the helpers that source calls are in pebble_runtime)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

# Re-exported: callers print values as Pebble does through `pebble.to_text`.
from .pebble_runtime import fail_if_undefined, to_json, to_text

__all__ = ["fail_if_undefined", "to_jinja", "to_json", "to_text"]

# Pebble's binary operators and precedences (Pebble's CoreExtension plus Kestra's ??, ??? and in);
# `not` here is the first word of `not in`, and `**`/`//` are Jinja's, kept for Jinja-minded users.
BINARY_PRECEDENCE = {
    "or": 10,
    "and": 15,
    "is": 20,
    "contains": 20,
    "in": 20,
    "not": 20,
    "==": 30,
    "equals": 30,
    "!=": 30,
    "<": 30,
    ">": 30,
    "<=": 30,
    ">=": 30,
    "+": 40,
    "-": 40,
    "*": 60,
    "/": 60,
    "//": 60,
    "%": 60,
    "**": 70,
    "|": 100,
    "~": 110,
    "..": 120,
    "??": 120,
    "???": 120,
}
# Pebble binds unary operators tighter than anything: `not a == b` is `(not a) == b`.
UNARY_PRECEDENCE = 500
LITERALS = {
    "true": "true",
    "TRUE": "true",
    "false": "false",
    "FALSE": "false",
    "null": "none",
    "NULL": "none",
    "none": "none",
    "NONE": "none",
}
# Pebble's loop counters are 0-based; Jinja's `index` and `revindex` are 1-based.
LOOP_ATTRIBUTES = {"index": "index0", "revindex": "revindex0"}

_TAG_START = re.compile(r"\{\{|\{%|\{#")
_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>\?\?\?|\?\?|\.\.|==|!=|<=|>=|//|\*\*|[-+*/%~|?:.,=<>()\[\]{}])
    )""",
    re.X | re.S,
)
_CLOSERS = {closer: re.compile(r"\s*([-+]?)" + re.escape(closer)) for closer in ("}}", "%}")}
_END_RAW = re.compile(r"\{%([-+]?)\s*end(?:raw|verbatim)\s*([-+]?)%\}")


class Token(NamedTuple):
    kind: str  # string, number, name or op
    text: str


class _Unparsable(Exception):
    """The tag is not Pebble we understand; it is handed to Jinja untouched, which reports real errors."""


# --- Splitting the template into text and tags -------------------------------------------------


def to_jinja(source: str) -> str:
    """Return Jinja2 source equivalent to Pebble `source`; text outside tags is never changed."""
    out: list[str] = []
    pos, loops = 0, 0
    while match := _TAG_START.search(source, pos):
        out.append(source[pos : match.start()])
        if match.group() == "{#":
            end = source.find("#}", match.end())
            pos = len(source) if end < 0 else end + 2
            out.append(source[match.start() : pos])
            continue
        closer = "}}" if match.group() == "{{" else "%}"
        tag = _read_tag(source, match.start(), closer)
        if tag is None:  # unterminated: let Jinja report it
            out.append(source[match.start() :])
            return "".join(out)
        left, tokens, right, pos = tag
        raw = source[match.start() : pos]
        if tokens is None:
            out.append(raw)
        elif closer == "}}":
            out.append(_rewrite_print(raw, left, tokens, right, loops))
        elif tokens and tokens[0].text in ("raw", "verbatim"):
            text, pos = _copy_raw_block(source, pos, left, right)
            out.append(text)
        else:
            text, loops = _rewrite_statement(raw, left, tokens, right, loops)
            out.append(text)
    out.append(source[pos:])
    return "".join(out)


def _read_tag(source: str, start: int, closer: str) -> tuple[str, list[Token] | None, str, int] | None:
    """Tokenize the tag at `start` up to its closer at bracket depth 0.

    Returns (left whitespace mark, tokens or None when not tokenizable, right mark, end position)."""
    pos = start + 2
    left = source[pos] if source[pos : pos + 1] in ("-", "+") else ""
    pos += len(left)
    tokens: list[Token] = []
    depth = 0
    while True:
        close = _CLOSERS[closer].match(source, pos)
        if close and depth == 0:
            return left, tokens, close.group(1), close.end()
        token = _TOKEN.match(source, pos)
        if token is None or token.lastgroup is None:
            end = source.find(closer, pos)
            return None if end < 0 else (left, None, "", end + 2)
        kind, text = token.lastgroup, token.group(token.lastgroup)
        if kind == "op" and text in "([{":
            depth += 1
        elif kind == "op" and text in ")]}":
            depth -= 1
        tokens.append(Token(kind, text))
        pos = token.end()


def _copy_raw_block(source: str, pos: int, left: str, right: str) -> tuple[str, int]:
    """Copy a Pebble `verbatim` (or Jinja `raw`) block as a Jinja raw block."""
    end = _END_RAW.search(source, pos)
    if end is None:
        return "{%" + left + " raw " + right + "%}" + source[pos:], len(source)
    closing = "{%" + end.group(1) + " endraw " + end.group(2) + "%}"
    return "{%" + left + " raw " + right + "%}" + source[pos : end.start()] + closing, end.end()


def _rewrite_print(raw: str, left: str, tokens: list[Token], right: str, loops: int) -> str:
    try:
        code = _Parser(tokens, loops).whole_expression().code
    except _Unparsable:
        return raw
    return "{{" + left + " " + code + " " + right + "}}"


def _rewrite_statement(raw: str, left: str, tokens: list[Token], right: str, loops: int) -> tuple[str, int]:
    """Rewrite a `{% %}` tag, returning it with the number of for loops open after it."""
    keyword = tokens[0].text if tokens else ""
    if keyword == "endfor":
        return raw, max(loops - 1, 0)
    try:
        body = _statement_body(keyword, tokens, loops)
    except _Unparsable:
        body = None
    text = raw if body is None else "{%" + left + " " + body + " " + right + "%}"
    return text, loops + (keyword == "for")


def _statement_body(keyword: str, tokens: list[Token], loops: int) -> str | None:
    """Rewrite the expressions of `if`, `elseif`, `for` and `set`; None leaves other statements unchanged."""
    if keyword in ("if", "elseif", "elif"):
        return ("if " if keyword == "if" else "elif ") + _Parser(tokens[1:], loops).whole_expression().code
    if keyword == "for":
        return _rewrite_for(tokens, loops)
    if keyword == "set" and len(tokens) > 3 and tokens[2].text == "=":
        return f"set {tokens[1].text} = " + _Parser(tokens[3:], loops).whole_expression().code
    return None


def _rewrite_for(tokens: list[Token], loops: int) -> str:
    """`for k, v in map`: iterate through _pebble_iter so maps give entries that unpack to key, value."""
    texts = [t.text for t in tokens]
    if "in" not in texts:
        raise _Unparsable
    split = texts.index("in")
    names, commas = texts[1:split:2], texts[2:split:2]
    well_formed = len(commas) == len(names) - 1 and all(c == "," for c in commas)
    if not well_formed or not all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in names):
        raise _Unparsable
    iterable = _Parser(tokens[split + 1 :], loops).whole_expression().code
    return f"for {', '.join(names)} in _pebble_iter({iterable})"


# --- Parsing Pebble expressions and printing them as Jinja ---------------------------------------


@dataclass(frozen=True)
class Code:
    """Jinja source for an expression; `calls` means evaluating it runs a function, so never do it twice."""

    code: str
    calls: bool = False


class _Parser:
    """A precedence-climbing parser that mirrors Pebble's ExpressionParser and prints Jinja."""

    def __init__(self, tokens: list[Token], loops: int) -> None:
        self.tokens, self.pos, self.loops = tokens, 0, loops

    def whole_expression(self) -> Code:
        result = self.expression()
        if self.pos != len(self.tokens):
            raise _Unparsable
        return result

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            raise _Unparsable
        self.pos += 1
        return token

    def name(self) -> str:
        token = self.take()
        if token.kind != "name":
            raise _Unparsable
        return token.text

    def at(self, text: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.text == text and token.kind in ("op", "name")

    def expression(self, min_precedence: int = 0) -> Code:
        token = self.peek()
        if token is not None and ((token.text in ("-", "+") and token.kind == "op") or token.text == "not"):
            self.pos += 1
            operand = self.expression(UNARY_PRECEDENCE)
            space = " " if token.text == "not" else ""
            left = Code(f"({token.text}{space}{operand.code})", operand.calls)
        else:
            left = self.postfix(self.primary())
        while (op := self.binary_operator()) and BINARY_PRECEDENCE[op] >= min_precedence:
            self.pos += 1
            left = self.binary(op, left)
        if min_precedence == 0 and self.at("?"):
            self.pos += 1
            then = self.expression()
            self.take(":")
            otherwise = self.expression()
            left = Code(
                f"({then.code} if {left.code} else {otherwise.code})", left.calls or then.calls or otherwise.calls
            )
        return left

    def binary_operator(self) -> str | None:
        token = self.peek()
        if token is None or token.kind not in ("op", "name") or token.text not in BINARY_PRECEDENCE:
            return None
        if token.text == "not" and not self.at("in", 1):
            return None
        return token.text

    def binary(self, op: str, left: Code) -> Code:
        if op == "|":
            return self.filter(left)
        if op == "is":
            return self.test(left)
        if op == "not":
            self.take("in")
            op = "not in"
        # Coalescing is associative, so read `a ?? b ?? c` as `a ?? (b ?? c)`: each operand is then
        # printed once or twice, where a left fold would double the whole chain at every step.
        right_associative = op in ("??", "???")
        right = self.expression(BINARY_PRECEDENCE[op.split()[0]] + (0 if right_associative else 1))
        calls = left.calls or right.calls
        if op == "??":
            if left.calls:  # evaluate a call once, at the cost of evaluating the fallback eagerly
                return Code(f"_pebble_coalesce({left.code}, {right.code})", True)
            return Code(f"({left.code} if {left.code} is _pebble_set else {right.code})", calls)
        if op == "???":
            if left.calls:
                return Code(f"_pebble_coalesce_undefined({left.code}, {right.code})", True)
            return Code(f"({left.code} if {left.code} is defined else {right.code})", calls)
        helpers = {
            "contains": "_pebble_contains",
            "~": "_pebble_concat",
            "..": "_pebble_range",
            "==": "_pebble_equals",
            "equals": "_pebble_equals",
        }
        if op in helpers:
            return Code(f"{helpers[op]}({left.code}, {right.code})", calls)
        if op == "!=":
            return Code(f"(not _pebble_equals({left.code}, {right.code}))", calls)
        if op in ("<", "<=", ">", ">="):  # Jinja cannot intercept comparisons, so they call Pebble's rules
            return Code(f"_pebble_compare('{op}', {left.code}, {right.code})", calls)
        return Code(f"({left.code} {op} {right.code})", calls)

    def filter(self, left: Code) -> Code:
        name = self.name()
        args = self.arguments() if self.at("(") else ""
        return Code(f"({left.code})|{name}{args}", True)

    def test(self, left: Code) -> Code:
        negate = " not" if self.at("not") else ""
        self.pos += bool(negate)
        name = self.name()
        args = self.arguments() if self.at("(") else ""
        return Code(f"(({left.code}) is{negate} {name}{args})", left.calls)

    def primary(self) -> Code:
        token = self.take()
        if token.kind in ("string", "number"):
            return Code(token.text)
        if token.kind == "name":
            return Code(LITERALS.get(token.text, token.text))
        if token.text == "(":
            inner = self.expression()
            self.take(")")
            return Code(f"({inner.code})", inner.calls)
        if token.text == "[":
            items = self.sequence("]", self.expression)
            return Code("[" + ", ".join(i.code for i in items) + "]", any(i.calls for i in items))
        if token.text == "{":
            pairs = self.sequence("}", self.pair)
            return Code("{" + ", ".join(p.code for p in pairs) + "}", any(p.calls for p in pairs))
        raise _Unparsable

    def pair(self) -> Code:
        key = self.expression()
        self.take(":")
        value = self.expression()
        return Code(f"{key.code}: {value.code}", key.calls or value.calls)

    def sequence(self, closer: str, item: Any) -> list[Code]:
        items: list[Code] = []
        while not self.at(closer):
            items.append(item())
            if not self.at(closer):
                self.take(",")
        self.take(closer)
        return items

    def postfix(self, node: Code) -> Code:
        while True:
            if self.at("."):
                self.pos += 1
                node = self.attribute(node)
            elif self.at("["):
                self.pos += 1
                node = self.subscript(node)
            elif self.at("("):
                node = Code(node.code + self.arguments(), True)
            else:
                return node

    def attribute(self, node: Code) -> Code:
        token = self.take()
        if token.kind == "number":
            return Code(f"{node.code}[{token.text}]", node.calls)
        if token.kind != "name":
            raise _Unparsable
        name = token.text
        if node.code == "loop" and self.loops:
            name = LOOP_ATTRIBUTES.get(name, name)
        return Code(f"{node.code}.{name}", node.calls)

    def subscript(self, node: Code) -> Code:
        """`a[i]`, or a Jinja slice `a[i:j:k]` with any part left out."""
        parts: list[str] = []
        calls = node.calls
        current = ""
        while not self.at("]"):
            if self.at(":"):
                self.pos += 1
                parts.append(current)
                current = ""
                continue
            index = self.expression()
            current, calls = index.code, calls or index.calls
        self.take("]")
        parts.append(current)
        if not any(parts):
            raise _Unparsable
        return Code(f"{node.code}[{':'.join(parts)}]", calls)

    def arguments(self) -> str:
        """Call arguments, positional or `name=value`, printed with their parentheses."""
        self.take("(")
        args: list[str] = []
        while not self.at(")"):
            keyword = self.peek()
            if keyword and keyword.kind == "name" and self.at("=", 1):
                self.pos += 2
                args.append(f"{keyword.text}={self.expression().code}")
            else:
                args.append(self.expression().code)
            if not self.at(")"):
                self.take(",")
        self.take(")")
        return "(" + ", ".join(args) + ")"

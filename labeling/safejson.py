"""JSON parsing with limits, for every JSON text the app takes from outside (the API's bodies,
COCO files): nesting at most MAX_DEPTH levels, integers of at most MAX_INTEGER_DIGITS digits,
finite numbers only. A refusal is a JSONError naming where: the line and column of malformed
JSON, or the JSON path (`annotations[3].bbox[0]`) of the value past a limit.

The usual text is parsed once by orjson (C; it refuses infinite numbers, NaN and more than 1024
levels); the depth (numpy) and the runs of digits (a substring search) are then measured on the
text with its strings blanked, with no walk over the values. Only a text that may break a limit
is parsed again by the standard library with hooks, to find the path of what is refused.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

import numpy as np
import orjson

MAX_DEPTH = 64  # arrays and objects inside each other
MAX_INTEGER_DIGITS = 20  # an unsigned 64-bit integer has 20

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * (MAX_INTEGER_DIGITS + 1)


class JSONError(ValueError):
    """A JSON text refused: malformed (lineno and colno set) or past a limit (path set: "" for
    the top level)."""

    def __init__(
        self, reason: str, *, path: str | None = None, lineno: int | None = None, colno: int | None = None
    ) -> None:
        self.reason, self.path, self.lineno, self.colno = reason, path, lineno, colno
        if lineno is not None:
            message = f"{reason} at line {lineno}, column {colno}"
        elif path:
            message = f"{path}: {reason}"
        else:
            message = reason
        super().__init__(message)


def loads(data: bytes | str) -> Any:
    """The value of a JSON text (UTF-8 bytes, a leading BOM allowed, or str); JSONError otherwise."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in exc.msg:
            raise JSONError(_too_deep(), path="") from exc
        return _checked(raw)  # the standard library says where, or finds the refused number's path
    blanked = _STRING.sub(b'""', raw)
    if _depth(blanked) > MAX_DEPTH:
        raise JSONError(_too_deep(), path=_deep_path(value))
    if _LONG_RUN in blanked.translate(_DIGITS_AS_ZERO):
        return _checked(raw)  # a long integer, or only a long fraction or exponent
    return value


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep"


def _depth(blanked: bytes) -> int:
    brackets = np.frombuffer(blanked.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if not brackets.size:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


class _Refused:
    """A number the hooks refused, left in the parsed value so that its path can be found."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _integer(text: str) -> int | _Refused:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INTEGER_DIGITS:
        return _Refused(
            f"an integer of {digits} digits ({text[:12]}…) is refused: at most {MAX_INTEGER_DIGITS} digits"
        )
    return int(text)


def _float(text: str) -> float | _Refused:
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"the number {text[:24]}{'…' if len(text) > 24 else ''} is out of range")
    return value


def _constant(text: str) -> _Refused:
    return _Refused(f"{text} is not a JSON number")


def _checked(raw: bytes) -> Any:
    """The slow, exact parse: the standard library with hooks; JSONError with where it failed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError as exc:
        raise JSONError(_too_deep(), path="") from exc
    except json.JSONDecodeError as exc:
        raise JSONError(exc.msg, lineno=exc.lineno, colno=exc.colno) from exc
    problem = _first_problem(value)
    if problem is not None:
        raise JSONError(problem[1], path=problem[0])
    return value


def _path(parts: tuple) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        if len(out) > 80:
            return out[:80] + "…"
    return out


def _first_problem(value: Any) -> tuple[str, str] | None:
    """(path, reason) of the first value nested too deep or refused by the hooks, depth first."""
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        node, parts, depth = stack.pop()
        if isinstance(node, _Refused):
            return _path(parts), node.reason
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                return _path(parts), _too_deep()
            items = node.items() if isinstance(node, dict) else enumerate(node)
            children = [(child, (*parts, key), depth + 1) for key, child in items]
            stack.extend(reversed(children))
    return None


def _deep_path(value: Any) -> str:
    problem = _first_problem(value)
    return problem[0] if problem is not None else ""

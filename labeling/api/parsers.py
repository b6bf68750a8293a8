"""The API's JSON parser (REST_FRAMEWORK's first parser): every JSON body is parsed with the
limits of labeling.safejson (depth, integer length, finite numbers). A refusal is a 400 that says
where: the line and column of malformed JSON, the JSON path of a value past a limit."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from labeling import safejson


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        data = stream.read() if stream is not None else b""
        if encoding.lower().replace("-", "") != "utf8":
            try:
                data = data.decode(encoding)
            except (LookupError, UnicodeDecodeError) as exc:
                raise ParseError(f"JSON parse error - not {encoding} text ({exc})") from exc
        try:
            return safejson.loads(data)
        except safejson.JSONError as exc:
            if exc.lineno is not None or exc.path is None:
                raise ParseError(f"JSON parse error - {exc}") from exc
            where = exc.path or "the top level"
            raise ParseError(f"The body is refused: {where}: {exc.reason}.") from exc

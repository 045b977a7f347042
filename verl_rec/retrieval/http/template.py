"""Where a query goes in an engine's request: a URL template and an optional JSON body template.

Placeholders are ``{name}`` fields (Python's format syntax without conversions or specs):
``{base}`` (the recipe's ``index_path``, the engine's base URL, inserted as written),
``{query}`` (the query text), ``{k}`` (how many hits) and any name of the ``params`` option
(constants such as an index name). In the URL every value but ``{base}`` is percent-encoded,
so any text is a valid URL; in the body the values are placed into the parsed JSON structure
and serialised by :mod:`json`, never pasted into JSON text, so any text is valid JSON. A body
string that is exactly ``"{k}"`` becomes the number ``k``.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

BUILT_IN_KEYS = ("base", "query", "k")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class TemplateError(ValueError):
    """A request template that cannot be filled: names the template, the key and the known keys."""


def clean_text(text: Any) -> str:
    """Any Python text as a string UTF-8 can carry: lone surrogates (a lossy tokenizer decode)
    become U+FFFD instead of failing the encoder."""
    text = "" if text is None else text if isinstance(text, str) else str(text)
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def template_keys(template: str, where: str) -> list[str]:
    """The placeholder names of ``template``; a conversion, a format spec or a positional field
    fails naming ``where`` (the option it came from)."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"{where}: {template!r} is not a valid template ({exc}); "
                            "write placeholders as {query}, and a literal brace as {{ or }}") from None
    keys = []
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(f"{where}: placeholder {{{name}{'!' + conversion if conversion else ''}"
                                f"{':' + spec if spec else ''}}} in {template!r} is not a plain name; use e.g. {{query}}")
        keys.append(name)
    return keys


def _check_known(keys: list[str], known: tuple[str, ...], template: str, where: str) -> None:
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise TemplateError(f"{where}: unknown placeholder(s) {unknown} in {template!r}; the known ones are "
                            f"{list(known)} (add constants under backend_options.params)")


def _walk_strings(value: Any, fn: Any) -> Any:
    """``value`` (parsed JSON, or a config's mappings and lists) as plain dicts and lists, with
    every string (keys included) replaced by ``fn(string)``."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {fn(str(key)): _walk_strings(item, fn) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [_walk_strings(item, fn) for item in value]
    return value


@dataclass(frozen=True)
class RequestTemplate:
    """A filled-in request per query: ``url(query, k)`` and ``body(query, k)`` (bytes or None)."""

    url_template: str
    base: str
    body_template: Any = None  # parsed JSON (mapping or list), a JSON string, or None for no body
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = sorted(set(self.params) & set(BUILT_IN_KEYS))
        if clash:
            raise TemplateError(f"backend_options.params may not redefine {clash}: they are filled in per query")
        known = (*BUILT_IN_KEYS, *self.params)
        _check_known(template_keys(self.url_template, "backend_options.url"), known, self.url_template,
                     "backend_options.url")
        body = self.body_template
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError as exc:
                raise TemplateError(f"backend_options.body is not JSON ({exc}): {body[:200]!r}") from None
            object.__setattr__(self, "body_template", body)
        if body is not None:
            def check(text: str) -> str:
                _check_known(template_keys(text, "backend_options.body"), known, text, "backend_options.body")
                return text

            object.__setattr__(self, "body_template", _walk_strings(body, check))  # plain dicts and lists

    def url(self, query: str, k: int) -> str:
        values = {key: quote(clean_text(value), safe="") for key, value in self.params.items()}
        values.update(base=self.base.rstrip("/"), query=quote(clean_text(query), safe=""), k=str(int(k)))
        return self.url_template.format_map(values)

    def body(self, query: str, k: int) -> bytes | None:
        if self.body_template is None:
            return None
        values = {key: clean_text(value) for key, value in self.params.items()}
        values.update(base=self.base.rstrip("/"), query=clean_text(query), k=str(int(k)))

        def fill(text: str) -> Any:
            if text == "{k}":
                return int(k)
            return text.format_map(values)

        return json.dumps(_walk_strings(self.body_template, fill), ensure_ascii=False).encode("utf-8")


__all__ = ["BUILT_IN_KEYS", "RequestTemplate", "TemplateError", "clean_text", "template_keys"]

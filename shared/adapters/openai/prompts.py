"""The prompts the `openai` generator sends: built-in per content type, or from a file.

Prompts are TOML (stdlib `tomllib`): one table per content type, `default` for the rest, each
with a `system` and a `user` template in `str.format` syntax. A template may name only the
fields of `PLACEHOLDERS`, and only plainly (no attribute, index or format spec), so a prompts
file cannot reach into the objects behind them. Everything is checked when the worker starts:
a bad file is a `ConfigurationError` naming the file and the line, never a failed item later.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from shared.domain.content import ContentRequest
from shared.errors import ConfigurationError

PLACEHOLDERS = ("concept_title", "concept_id", "roadmap_id", "content_type", "attempt")
PARTS = ("system", "user")
DEFAULT = "default"
BUILT_IN = "prompts.toml"
"""Shipped beside this module (package data)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    system: str
    user: str


class Prompts:
    """The templates by content type; `messages` renders one request's chat messages."""

    def __init__(self, by_type: dict[str, Prompt]) -> None:
        self._by_type = by_type

    def messages(self, request: ContentRequest) -> list[dict[str, str]]:
        prompt = self._by_type.get(request.content_type) or self._by_type[DEFAULT]
        fields = {
            "concept_title": request.concept_title or request.concept_id,
            "concept_id": request.concept_id,
            "roadmap_id": request.roadmap_id,
            "content_type": request.content_type,
            "attempt": request.attempt,
        }
        return [
            {"role": "system", "content": prompt.system.format(**fields)},
            {"role": "user", "content": prompt.user.format(**fields)},
        ]


def load_prompts(path: str | None = None) -> Prompts:
    """The built-in prompts, with the tables of the file at `path` (if any) replacing theirs."""
    built_in = resources.files(__package__).joinpath(BUILT_IN).read_text(encoding="utf-8")
    by_type = _parse(built_in, f"<built-in {BUILT_IN}>")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise ConfigurationError(f"TASKRELAY_PROMPTS: cannot read {path}: {exc}") from None
        by_type.update(_parse(text, path))
    return Prompts(by_type)


def _parse(text: str, source: str) -> dict[str, Prompt]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its text ends "(at line N, column M)"
        raise ConfigurationError(f"TASKRELAY_PROMPTS: {source}: {exc}") from None
    prompts: dict[str, Prompt] = {}
    for name, table in document.items():
        where = _Locator(text, source, name)
        if not isinstance(table, dict):
            raise where.error(None, "must be a table such as [tutorial] with system and user")
        unknown = sorted(set(table) - set(PARTS))
        if unknown:
            raise where.error(unknown[0], f"unknown key {unknown[0]!r} (keys: system, user)")
        for part in PARTS:
            _check(table.get(part), part, where)
        prompts[name] = Prompt(table["system"], table["user"])
    return prompts


def _check(template: Any, part: str, where: _Locator) -> None:
    if not isinstance(template, str) or not template.strip():
        raise where.error(part if template is not None else None, f"needs a non-empty {part}")
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template)]
    except ValueError as exc:  # a lone { or }
        raise where.error(part, f"{part}: {exc} (write {{{{ and }}}} for braces)") from None
    for field_name, spec, conv in parsed:
        if field_name is None:
            continue
        if field_name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            shown = "{" + field_name + "}"
            raise where.error(part, f"{part}: unknown placeholder {shown} (known: {known})")
        if spec or conv:
            raise where.error(part, f"{part}: a placeholder takes no format spec or conversion")


class _Locator:
    """Finds the line of a table's key in the file's text, for an error that names it."""

    def __init__(self, text: str, source: str, table: str) -> None:
        self._lines, self._source, self._table = text.splitlines(), source, table

    def error(self, key: str | None, message: str) -> ConfigurationError:
        line = self._line(key)
        at = f" line {line}" if line else ""
        return ConfigurationError(
            f"TASKRELAY_PROMPTS: {self._source}{at}: [{self._table}] {message}"
        )

    def _line(self, key: str | None) -> int | None:
        header = re.compile(rf"^\s*\[\s*\"?{re.escape(self._table)}\"?\s*\]")
        inside, header_line = False, None
        for number, line in enumerate(self._lines, start=1):
            if header.match(line):
                inside, header_line = True, number
                continue
            if inside and re.match(r"^\s*\[", line):
                break
            if inside and key is not None and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
                return number
        return header_line

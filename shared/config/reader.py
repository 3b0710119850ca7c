"""How a settings field names its environment variable, and the one reader of them all.

Every field of every settings dataclass is declared with `setting(default, env, doc)`: the
variable that sets it, a line saying what it is for, and how its text is parsed and bounded.
`read_section` reads a whole dataclass from that metadata, so no field can be left unreadable,
and `reference_table` renders the same table for docs/configuration.md, which a unit test holds
to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Any, TypeVar

from shared.errors import ConfigurationError

T = TypeVar("T")


class Floor(Enum):
    """The smallest value a number may take."""

    ZERO = "zero or more"
    POSITIVE = "positive"


def setting(
    default: Any,
    env: str,
    doc: str,
    *,
    parse: Callable[[str], Any] | None = None,
    floor: Floor = Floor.ZERO,
    shown: str | None = None,
) -> Any:
    """A dataclass field set by `env`; `parse` defaults to the default's type, `shown` is how
    the reference shows the default (when the value itself would not say it)."""
    metadata = {"env": env, "doc": doc, "parse": parse, "floor": floor, "shown": shown}
    return dataclasses.field(default=default, metadata=metadata)


def read_section(cls: type[T], env: Mapping[str, str]) -> T:
    """An instance of the settings dataclass `cls`, each field from its variable if set (an
    empty value counts as unset); ConfigurationError names the variable of a malformed value."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        raw = env.get(f.metadata["env"])
        if raw:
            values[f.name] = _parsed(f, raw)
    return cls(**values)


def _parsed(f: dataclasses.Field[Any], raw: str) -> Any:
    variable, floor = f.metadata["env"], f.metadata["floor"]
    parse: Callable[[str], Any] = f.metadata["parse"] or type(f.default)
    try:
        value = parse(raw)
    except ValueError as exc:
        # A parser of its own says what it wants and shows the value (a URL without password).
        detail = f"a {parse.__name__}, got {raw!r}" if parse in (int, float) else str(exc)
        raise ConfigurationError(f"{variable} must be {detail}") from None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (value < 0 or (floor is Floor.POSITIVE and value == 0)):
        whole = floor is Floor.POSITIVE and isinstance(value, int)
        bound = floor.value + (" (at least 1)" if whole else "")
        raise ConfigurationError(f"{variable} must be {bound}, got {raw!r}")
    return value


def fields_of(cls: type[Any]) -> Iterator[dataclasses.Field[Any]]:
    """The fields of a settings dataclass, nested sections walked in declaration order."""
    for f in dataclasses.fields(cls):
        if "env" in f.metadata:
            yield f
        elif isinstance(f.default_factory, type):
            yield from fields_of(f.default_factory)


def shown_default(f: dataclasses.Field[Any]) -> str:
    """The default as the configuration reference shows it."""
    if f.metadata["shown"] is not None:
        return str(f.metadata["shown"])
    return f"`{f.default}`"


def reference_table(cls: type[Any]) -> str:
    """The Markdown table of every variable, as docs/configuration.md carries it."""
    rows = [
        f"| `{f.metadata['env']}` | {shown_default(f)} | {' '.join(f.metadata['doc'].split())} |"
        for f in fields_of(cls)
    ]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows])

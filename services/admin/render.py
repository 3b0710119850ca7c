"""How `taskrelay admin` prints: one JSON document for scripts, or an aligned table for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2, sort_keys=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str) -> None:
    if not rows:
        print(empty)
        return
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    for line in (list(headers), *cells):
        cells_of_line = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells_of_line).rstrip())


def age(seconds: float | None) -> str:
    """`45s`, `12m03s`, `5h07m`, `3d04h`: an age read at a glance."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def confirmed(question: str) -> bool:
    """Ask, and read the answer from stdin; anything but y/yes (or no answer) is a no."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _cell(value: object, width: int = 60) -> str:
    text = "-" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"

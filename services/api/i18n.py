"""The task page's two languages: which one a request gets, and the message catalogues.

Every string the page shows lives in `static/i18n/<language>.json`, one flat catalogue per
language, read by this module (to render the page) and by the page's script (to keep it live
and to switch language without a reload). Placeholders are `{name}`. Statuses, steps and content
types are translated through keys (`status_<status>`, `step_<step>`, `type_<type>`); user data
(titles, errors, the server's update messages) is shown as given.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

I18N_DIR = Path(__file__).parent / "static" / "i18n"
LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_RANGE = re.compile(
    r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$"
)


def negotiate(accept_language: str, chosen: str | None = None) -> str:
    """`chosen` (the page's switch, `?lang=`) if we speak it, else the best `Accept-Language`.

    Any Chinese range maps to Simplified Chinese (the only Chinese we have), any English one to
    English; ranges are taken by their quality, then their order.
    """
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")[:32]):
        match = _RANGE.match(part)
        if match is None:
            continue
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        language = _ours(match.group(1).lower())
        if language is not None and quality > 0:
            ranked.append((-quality, index, language))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def _ours(tag: str) -> str | None:
    primary = tag.split("-")[0]
    if primary == "zh":
        return "zh-CN"
    if primary == "en":
        return "en"
    return None


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    """The messages of one of `LANGUAGES`, read once per process."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    messages: dict[str, str] = json.loads((I18N_DIR / f"{language}.json").read_text("utf-8"))
    return messages


def translate(messages: dict[str, str], key: str, **values: object) -> str:
    """The message `key` with its `{name}` placeholders filled; the key itself if missing."""
    text = messages.get(key, key)
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)

"""Secrets never printed: a URL's password, and a token or password in any query string.

Secrets are found by parsing, never by matching the text as written: `?%74oken=...` is the
query key `token` to the server that reads it (keys are percent-decoded), so it is `token` to
the redactor too. A key is secret when, decoded and lower-cased, it contains `token` or
`password`; its value is replaced by `***` whatever it holds.

In free text everything after the first `?` is read as query pairs, split on `&`, `;` and
whitespace: no character a client may put in a query (`"`, `'`, `<`, `>`, `#`, `?`, a tab ...)
ends the query early and lets a later `token=` pair through, and words after the query that are
not `key=value` stay as they are. (The price: a `...token...=value` word in prose after a `?`
is masked too.)

`RedactSecrets` applies this to every stdlib log record (uvicorn logs each WebSocket's path
and query) and `redact_event` to every structlog event, so no log line carries either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

MASK = "***"
SECRET_KEY_PARTS = ("token", "password")
_SEPARATORS = re.compile(r"([&;\s]+)")


def redact_query(query: str) -> str:
    """The query string with the value of every secret key masked."""
    parts = _SEPARATORS.split(query)  # pairs at even indexes, their separators between
    for i in range(0, len(parts), 2):
        key, sep, _ = parts[i].partition("=")
        if sep and _is_secret(key):
            parts[i] = f"{key}={MASK}"
    return "".join(parts)


def redact_text(text: str) -> str:
    """Free text (a log message, a URL) with every secret pair after its first `?` masked."""
    head, mark, rest = text.partition("?")
    return f"{head}?{redact_query(rest)}" if mark else text


def redact_url(url: str) -> str:
    """The URL with its password (userinfo or a `password=` parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # unparseable: say which scheme, never the rest
        return f"{url.split('://', 1)[0]}://{MASK}" if "://" in url else MASK
    netloc = parts.netloc
    if password:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=redact_query(parts.query)))


def scrub(text: str, url: str) -> str:
    """`text` (a driver's error message, say) without the password of `url` anywhere in it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = text.replace(url, redact_url(url))
    for form in {password, unquote(password)} if password else ():
        text = text.replace(form, MASK)
    return text


def _is_secret(raw_key: str) -> bool:
    key = unquote_plus(raw_key).lower()
    return any(part in key for part in SECRET_KEY_PARTS)


class RedactSecrets(logging.Filter):
    """Redacts a stdlib record's whole message, its arguments formatted in (whatever their
    type: a path, a header, an object whose text holds a URL); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: keep as is
            return True
        if "?" in message:
            record.msg, record.args = redact_text(message), None
        return True


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the same for every string value of an event."""
    for key, value in event.items():
        if isinstance(value, str) and "?" in value:
            event[key] = redact_text(value)
    return event

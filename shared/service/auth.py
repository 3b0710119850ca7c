"""Bearer tokens: HS256 JWTs signed with `TASKRELAY_SECRET`, the user id in `sub`.

The same token opens the HTTP API, the WebSocket and the task page.
"""

from __future__ import annotations

import functools
import time

import jwt

from shared.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "taskrelay"
MAX_USER_ID_CHARS = 255


def valid_user_id(user_id: object) -> bool:
    """1-255 printable characters, none of them whitespace at either end (protocol §6): the id
    is stored, logged and used in keys, so a NUL, a control character or a 10,000-character id
    is refused as a bad token, and so are " " and " alice" (a user no one can tell from
    "alice" in a log line or a listing)."""
    return (
        isinstance(user_id, str)
        and 1 <= len(user_id) <= MAX_USER_ID_CHARS
        and user_id.isprintable()
        and not user_id[0].isspace()
        and not user_id[-1].isspace()
    )


def issue_token(secret: str, user_id: str, ttl_seconds: int) -> str:
    if not valid_user_id(user_id):
        raise ValueError(
            "a user id is 1 to 255 printable characters, not starting or ending with whitespace"
        )
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + ttl_seconds, "iss": ISSUER}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> str:
    """The user id the token was issued for; Unauthorized when missing, forged or expired."""
    return verify_token_until(secret, token)[0]


def verify_token_until(secret: str, token: str) -> tuple[str, float]:
    """The user id and the expiry (epoch seconds) of a valid token; Unauthorized otherwise.
    (A socket outlives its handshake: the gateway closes it when the token expires.)"""
    if not token:
        raise Unauthorized("a bearer token is required")
    subject, expires = _verified(secret, token)
    if expires <= time.time():
        raise Unauthorized("the token has expired")
    return subject, expires


@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[str, float]:
    """Check the signature and claims once per token; the expiry is checked on every use.

    A browser or client sends the same token with every request: caching the verified
    (subject, exp) spares an HMAC and a JSON parse per request. Failures are not cached.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("the token is not valid") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("the token names no user")
    if not valid_user_id(subject):
        raise Unauthorized(
            "the token's user id is not 1 to 255 printable characters without whitespace at "
            "either end"
        )
    return subject, float(claims["exp"])


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or Unauthorized."""
    if not header:
        raise Unauthorized("an Authorization: Bearer <token> header is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()

"""Who a token names: `sub` is 1-255 printable characters with no whitespace at either end
(docs/protocol.md §6), checked on every token, not only on the ones `taskrelay token` issues."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.errors import Unauthorized
from shared.service.auth import ALGORITHM, ISSUER, issue_token, verify_token

SECRET = "s" * 32


def signed(sub: str) -> str:
    claims = {"sub": sub, "exp": int(time.time()) + 60, "iss": ISSUER}
    return jwt.encode(claims, SECRET, algorithm=ALGORITHM)


@pytest.mark.parametrize("sub", [" ", "  ", " alice", "alice ", "\u3000alice", "a\x00b", ""])
def test_a_subject_with_whitespace_at_an_end_is_refused(sub: str) -> None:
    with pytest.raises(Unauthorized):
        verify_token(SECRET, signed(sub))
    with pytest.raises(ValueError, match="user id"):
        issue_token(SECRET, sub, 60)


@pytest.mark.parametrize("sub", ["alice", "Zoë 用户 #1", "a b", "x" * 255])
def test_inner_spaces_and_any_script_are_users(sub: str) -> None:
    assert verify_token(SECRET, signed(sub)) == sub

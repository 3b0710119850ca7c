"""Which `x-schema-version` taskrelay's own consumers read (docs/protocol.md §11): 1, and a message
from before versions existed; anything else is named as unknown, never guessed at."""

from __future__ import annotations

import pytest

from shared.domain.messages import SCHEMA_VERSION, SCHEMA_VERSION_HEADER, unknown_schema_version


def test_the_published_version_is_one_and_is_read() -> None:
    assert SCHEMA_VERSION == 1
    assert unknown_schema_version({SCHEMA_VERSION_HEADER: 1, "x-seq": 4}) is None


def test_a_message_from_before_versions_is_read_as_version_one() -> None:
    assert unknown_schema_version({"x-task-id": "t"}) is None
    assert unknown_schema_version(None) is None


@pytest.mark.parametrize("version", [2, 0, -1, "1", b"1", 1.0, True, None, [1]])
def test_any_other_version_is_unknown_and_named(version: object) -> None:
    why = unknown_schema_version({SCHEMA_VERSION_HEADER: version})
    assert why is not None
    assert repr(version) in why
    assert SCHEMA_VERSION_HEADER in why

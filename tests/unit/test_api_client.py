"""What `taskrelay run` and `taskrelay demo` print of the API's URL: never its password."""

from __future__ import annotations

import pytest

from services.client import ApiClient


@pytest.mark.parametrize(
    ("base", "shown"),
    [
        ("http://u:Pw1@h:8000", "http://u:***@h:8000"),
        ("http://u:Pw2%40x@h:8000/", "http://u:***@h:8000"),
        ("http://h:8000", "http://h:8000"),
    ],
)
def test_the_page_url_and_the_unreachable_message_name_no_password(base: str, shown: str) -> None:
    client = ApiClient(base, "T0k")
    assert client.page_url("t1") == f"{shown}/tasks/t1?token=T0k"
    error = str(client.unreachable("cannot reach " + base, "Start it"))
    assert "Pw" not in error
    assert shown in error

"""The task page's languages and the items cursor: pure functions, no I/O but the catalogues."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from services.api.i18n import I18N_DIR, LANGUAGES, catalogue, negotiate, translate
from services.api.page import render
from shared.domain import CONTENT_TYPES, Status, decode_cursor, encode_cursor
from shared.errors import InvalidInput

STATIC = I18N_DIR.parent


@pytest.mark.parametrize(
    ("header", "chosen", "language"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh-CN"),
        ("zh", None, "zh-CN"),
        ("zh-TW", None, "zh-CN"),  # the only Chinese we have
        ("en-US,en;q=0.9", None, "en"),
        ("fr-FR, de;q=0.9", None, "en"),  # neither: the default
        ("", None, "en"),
        ("en;q=0.5, zh-CN;q=0.8", None, "zh-CN"),  # quality beats order
        ("zh;q=0, en", None, "en"),  # q=0 means "not this one"
        ("zh;q=abc, ;;, en-GB", None, "en"),  # junk is skipped, never an error
        ("zh-CN", "en", "en"),  # the page's switch wins
        ("en", "zh-CN", "zh-CN"),
        ("en", "klingon", "en"),  # an unknown choice is ignored
    ],
)
def test_negotiate(header: str, chosen: str | None, language: str) -> None:
    assert negotiate(header, chosen) == language


def test_catalogues_hold_every_string_of_the_page() -> None:
    en, zh = catalogue("en"), catalogue("zh-CN")
    assert set(en) == set(zh)
    assert all(value.strip() for value in zh.values())
    for key in en:  # the same placeholders in both languages
        assert set(re.findall(r"\{\w+\}", en[key])) == set(re.findall(r"\{\w+\}", zh[key])), key
    page = (STATIC / "task.html").read_text("utf-8")
    scripts = "".join((STATIC / name).read_text("utf-8") for name in ("task.js", "items.js"))
    used = set(re.findall(r'data-i18n="(\w+)"', page)) | set(re.findall(r"\$t_(\w+)", page))
    used |= set(re.findall(r'(?:\bt|say|setConnection\([^,]+,)\(?\s*"(\w+)"', scripts))
    used |= {f"status_{status}" for status in Status}
    used |= {f"type_{content_type}" for content_type in CONTENT_TYPES}
    assert len(used) > 30  # the scan found the page's strings
    assert used - set(en) == set(), "strings the page uses that the catalogues lack"


def test_translate_fills_placeholders_and_falls_back_to_the_key() -> None:
    messages = {"retry_failed": "Retry {n} failed items"}
    assert translate(messages, "retry_failed", n=10) == "Retry 10 failed items"
    assert translate(messages, "missing") == "missing"
    assert translate(messages, "retry_failed") == "Retry {n} failed items"


def test_the_page_speaks_the_chosen_language_and_escapes_user_data() -> None:
    view = {
        "task_id": "t-1",
        "roadmap_id": "<b>rm</b>",
        "status": "partial_failure",
        "current_step": "content_generation_partial_failure",
        "error_message": "10 of 21 content items failed",
        "last_message": "10 of 21 <content> items failed",
        "seq": 40,
        "items": {"total": 21, "completed": 11, "failed": 10, "pending": 0},
    }
    zh = render(view, "zh-CN")
    assert '<html lang="zh-CN">' in zh
    assert "部分失败" in zh
    assert "生成部分失败" in zh
    assert "<b>rm</b>" not in zh
    assert "&lt;b&gt;rm&lt;/b&gt;" in zh
    assert "10 of 21 &lt;content&gt; items failed" in zh  # the latest update, as given
    block = re.search(r'<script type="application/json" id="messages">(.*?)</script>', zh, re.S)
    assert block is not None
    assert json.loads(block.group(1)) == catalogue("zh-CN")
    en = render({**view, "current_step": "some_new_step", "last_message": None}, "en")
    assert '<html lang="en">' in en
    assert "some new step" in en  # a step the catalogue lacks, readably as given
    assert '<dd id="message">—</dd>' in en


def test_cursor_round_trip_and_bad_cursors() -> None:
    assert decode_cursor(None, None) == -1
    assert decode_cursor(encode_cursor(41, None), None) == 41
    assert decode_cursor(encode_cursor(7, "failed"), "failed") == 7
    with pytest.raises(InvalidInput, match="another status filter"):
        decode_cursor(encode_cursor(7, "failed"), None)
    bad = ["", "!!!", "aGVsbG8", base64.urlsafe_b64encode(b"i1:*:+3").decode(), "x" * 50]
    for cursor in bad:
        with pytest.raises(InvalidInput):
            decode_cursor(cursor, None)


def test_every_language_has_a_catalogue_file() -> None:
    assert sorted(p.stem for p in Path(I18N_DIR).glob("*.json")) == sorted(LANGUAGES)

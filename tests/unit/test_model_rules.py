"""The `openai` generator's rules that need no server: how long a 429 asks to wait, the error
of an item that kept failing, what counts as a usable answer, the key scrubbed from texts, the
prompts and their checks, and the choice of generator from the settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.openai import select_generator
from shared.adapters.openai.faults import (
    Fault,
    Malformed,
    Scrubber,
    given_up,
    provider_message,
    read_answer,
    retry_wait,
)
from shared.adapters.openai.prompts import PLACEHOLDERS, load_prompts
from shared.config.settings import Settings
from shared.domain.content import ContentRequest, Generated, Usage
from shared.errors import ConfigurationError
from shared.service.generation import _checked

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
REQUEST = ContentRequest("t1", "python", "c1", "Loops", "quiz", 2)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "1"}, 1.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Sat, 05 Dec 2026 12:00:07 GMT"}, 7.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "1.5s"}, 1.5),
        ({"x-ratelimit-reset-tokens": "1h2m3s"}, 3723.0),
        ({}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
    ],
)
def test_a_429_waits_what_its_headers_ask(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_wait(headers, NOW) == seconds


def test_a_past_retry_after_date_means_now() -> None:
    past = (NOW - timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_wait({"retry-after": past}, NOW) == 0.0


def test_the_error_of_an_item_that_kept_failing_names_the_status_once_clipped() -> None:
    faults = [Fault("server_error", "answered 503", "overloaded")] * 3
    assert given_up(faults) == "model answered 503 three times: overloaded"
    mixed = [Fault("timeout", "timed out after 5 s"), Fault("server_error", "answered 502", "bad")]
    assert given_up(mixed) == "model failed twice (timed out after 5 s, answered 502): bad"
    long = given_up([Fault("server_error", "answered 500", "x" * 5000)] * 3)
    assert len(long) <= 1000
    assert long.startswith("model answered 500 three times: xxx")


def test_the_providers_message_is_its_error_message_or_its_text() -> None:
    assert provider_message({"message": "Rate  limit\nreached"}, "ignored") == "Rate limit reached"
    assert provider_message("plain words", "") == "plain words"
    assert provider_message(None, "<html>Bad gateway</html>") == "<html>Bad gateway</html>"


def answer(content: object = "Hello", usage: object = None) -> str:
    body: dict[str, object] = {"choices": [{"message": {"role": "assistant", "content": content}}]}
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body)


def test_a_usable_answer_gives_content_and_usage() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}
    assert read_answer(answer("Hi", usage)) == Generated("Hi", Usage(12, 34))
    assert read_answer(answer("Hi")) == Generated("Hi", None)
    assert read_answer(answer("Hi", {"prompt_tokens": "12"})).usage is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("<html>502</html>", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"choices": []}', "no choices"),
        ('{"id": "x"}', "no choices"),
        (answer(""), "empty content"),
        (answer("   \n"), "empty content"),
        (answer(None), "empty content"),
        ('{"choices": [{"message": null}]}', "empty content"),
        ('{"choices": ["text"]}', "empty content"),
    ],
)
def test_a_malformed_answer_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(Malformed, match=says):
        read_answer(text)


def test_the_key_is_scrubbed_from_any_text() -> None:
    scrub = Scrubber("sk-live-0123456789")
    assert scrub("Incorrect API key provided: sk-live-0123456789.") == (
        "Incorrect API key provided: ***."
    )
    assert Scrubber(None)("nothing to hide") == "nothing to hide"


def test_the_built_in_prompts_cover_every_content_type_and_see_the_request() -> None:
    prompts = load_prompts()
    for content_type in ("tutorial", "resources", "quiz", "glossary"):
        system, user = prompts.messages(
            ContentRequest("t1", "python", "c1", "Loops", content_type, 1)
        )
        assert system["role"] == "system"
        assert "Loops" in user["content"]
        assert "python" in user["content"]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "prompts.toml"
    path.write_text(text)
    return str(path)


def test_a_prompts_file_replaces_the_built_in_ones_type_by_type(tmp_path: Path) -> None:
    fields = " ".join("{" + name + "}" for name in PLACEHOLDERS)
    path = write(tmp_path, f'[quiz]\nsystem = "Be brief."\nuser = "{fields} {{{{literal}}}}"\n')
    prompts = load_prompts(path)
    quiz = prompts.messages(REQUEST)
    assert quiz[0]["content"] == "Be brief."
    assert quiz[1]["content"] == "Loops c1 python quiz 2 {literal}"
    tutorial = prompts.messages(ContentRequest("t1", "python", "c1", "Loops", "tutorial", 1))
    assert tutorial[0]["content"] != "Be brief."


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            '[quiz]\nsystem = "s"\n\nuser = "about {title}"\n',
            "line 4: [quiz] user: unknown placeholder {title}",
        ),
        (
            '[quiz]\nsystem = "s"\nuser = "{concept_title.__class__}"\n',
            "line 3: [quiz] user: unknown",
        ),
        ('[quiz]\nsystem = "a { b"\nuser = "u"\n', "line 2: [quiz] system: expected '}'"),
        (
            '[quiz]\nsystem = "s"\nuser = "{attempt:>5}"\n',
            "line 3: [quiz] user: a placeholder takes",
        ),
        ('[quiz]\nsystem = "s"\n', "line 1: [quiz] needs a non-empty user"),
        ('[quiz]\nsystem = "s"\nuser = "u"\ntemperature = 2\n', "line 4: [quiz] unknown key"),
        ('quiz = "s"\n', "[quiz] must be a table"),
        ('[quiz]\nsystem = "unclosed\n', "at line 2"),
    ],
)
def test_a_bad_prompts_file_is_refused_naming_the_file_and_line(
    tmp_path: Path, text: str, says: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as refused:
        load_prompts(path)
    message = str(refused.value)
    assert message.startswith(f"TASKRELAY_PROMPTS: {path}")
    assert says in message
    assert "\n" not in message


def test_a_missing_prompts_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_prompts(str(tmp_path / "nowhere.toml"))


def test_the_openai_generator_needs_a_model_and_good_prompts(tmp_path: Path) -> None:
    chosen = {"TASKRELAY_CONTENT_GENERATOR": "openai"}
    with pytest.raises(ConfigurationError, match=r"^TASKRELAY_MODEL is not set"):
        select_generator(Settings.from_env(chosen))
    bad = write(tmp_path, "[quiz\n")
    with pytest.raises(ConfigurationError, match="TASKRELAY_PROMPTS"):
        select_generator(
            Settings.from_env({**chosen, "TASKRELAY_MODEL": "m", "TASKRELAY_PROMPTS": bad})
        )
    generator = select_generator(Settings.from_env({**chosen, "TASKRELAY_MODEL": "m"}))
    assert callable(generator)
    placeholder = select_generator(Settings.from_env({}))
    assert placeholder(REQUEST).startswith("# Quiz: Loops")


def test_the_api_key_never_shows_in_the_settings() -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-live-0123456789"})
    assert settings.model.api_key is not None
    assert settings.model.api_key.value == "sk-live-0123456789"
    assert "sk-live" not in repr(settings)
    assert "sk-live" not in str(settings.model.api_key)


def test_the_job_stores_generated_content_with_its_usage_and_plain_content_without() -> None:
    stored = _checked(Generated("text", Usage(3, 4)))
    assert (stored.content, stored.usage, stored.error) == (
        "text",
        {"prompt_tokens": 3, "completion_tokens": 4},
        None,
    )
    plain = _checked({"content": "x", "usage": {"prompt_tokens": 1}})
    assert plain.content == {"content": "x", "usage": {"prompt_tokens": 1}}
    assert plain.usage is None
    assert _checked(Generated("text")).usage is None

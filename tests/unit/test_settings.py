"""Settings are read once from the environment: defaults, accepted forms, clear errors; every
field has its variable and doc line, and docs/configuration.md is the same table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shared.config.reader import reference_table
from shared.config.settings import LoggingSettings, Settings
from shared.errors import ConfigurationError


def test_defaults_are_the_contract() -> None:
    settings = Settings.from_env({})
    assert settings.database.url == "postgresql://postgres@127.0.0.1:5432/taskrelay"
    assert settings.broker.url == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    assert settings.auth.secret is None
    assert settings.worker.content_generator == "shared.domain.content:placeholder_generator"
    assert settings.api.allowed_origins == ()


@pytest.mark.parametrize("url", ["postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"])
def test_both_database_url_forms(url: str) -> None:
    database = Settings.from_env({"DATABASE_URL": url}).database
    assert database.migrations_url == "postgresql+asyncpg://u@h:5432/db"
    assert database.asyncpg_dsn == "postgresql://u@h:5432/db"


def test_overrides_are_typed_like_their_defaults() -> None:
    settings = Settings.from_env(
        {
            "TASKRELAY_RELAY_BATCH_SIZE": "50",
            "TASKRELAY_RELAY_POLL_INTERVAL_SECONDS": "0.25",
            "TASKRELAY_WORKER_QUEUE_NAME": "other-queue",
            "TASKRELAY_RELAY_HEALTH_HOST": "0.0.0.0",
            "TASKRELAY_WS_QUEUE_LIMIT": "8",
            "TASKRELAY_ALLOWED_ORIGINS": "https://a.example/, https://b.example",
        }
    )
    assert settings.relay.batch_size == 50
    assert settings.relay.poll_interval_seconds == 0.25
    assert settings.worker.queue_name == "other-queue"
    assert settings.relay.health_host == "0.0.0.0"
    assert settings.api.ws_queue_limit == 8
    assert settings.api.allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("TASKRELAY_RELAY_BATCH_SIZE", "many", "must be a int"),
        ("TASKRELAY_RELAY_BATCH_SIZE", "0", "at least 1"),
        ("TASKRELAY_RELAY_RETENTION_SECONDS", "-1", "zero or more"),
        ("TASKRELAY_WORKER_LEASE_SECONDS", "0", "positive"),
        ("TASKRELAY_WS_MAX_FRAME_BYTES", "-5", "positive"),
    ],
)
def test_malformed_values_are_refused(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({variable: value})


def test_a_secret_under_32_characters_is_refused_where_it_is_needed() -> None:
    short = Settings.from_env({"TASKRELAY_SECRET": "x" * 31})  # reading it is fine (migrate)
    with pytest.raises(ConfigurationError, match="at least 32"):
        short.auth.require_secret()
    with pytest.raises(ConfigurationError, match="at least 32"):
        short.auth.checked_secret()
    assert Settings.from_env({}).auth.checked_secret() is None
    assert Settings.from_env({"TASKRELAY_SECRET": "x" * 32}).auth.require_secret() == "x" * 32


def test_socket_cap_and_rate_limit() -> None:
    assert Settings.from_env({}).api.ws_max_sockets_per_user == 32
    assert Settings.from_env({}).api.rate_limit_per_second == 100
    tuned = Settings.from_env(
        {"TASKRELAY_WS_MAX_SOCKETS_PER_USER": "4", "TASKRELAY_API_RATE_LIMIT_PER_SECOND": "0"}
    )
    assert tuned.api.ws_max_sockets_per_user == 4
    assert tuned.api.rate_limit_per_second == 0
    with pytest.raises(ConfigurationError, match="positive"):
        Settings.from_env({"TASKRELAY_WS_MAX_SOCKETS_PER_USER": "0"})


def test_a_malformed_database_url_is_shown_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({"DATABASE_URL": "mysql://root:Pw9@h/db?password=Pw10"})
    assert "Pw" not in str(refused.value)


def _leaves(cls: type) -> list[dataclasses.Field[object]]:
    """Every field of every settings section, walked from `Settings` (not from the reader's
    own walk, so a section the reader skipped is still found)."""
    found: list[dataclasses.Field[object]] = []
    for f in dataclasses.fields(cls):
        section = f.default_factory
        if isinstance(section, type) and dataclasses.is_dataclass(section):
            found.extend(_leaves(section))
        else:
            found.append(f)
    return found


LEAVES = _leaves(Settings)
SAMPLES = {
    "DATABASE_URL": "postgresql://u@elsewhere:5433/other",
    "TASKRELAY_LOG_FORMAT": "console",
    "TASKRELAY_LOG_LEVEL": "warning",
    "TASKRELAY_ALLOWED_ORIGINS": "https://a.example",
}


def test_every_field_has_a_variable_and_a_doc_line() -> None:
    variables = [f.metadata.get("env") for f in LEAVES]
    assert all(variables), [f.name for f in LEAVES if not f.metadata.get("env")]
    assert all(str(f.metadata.get("doc", "")).strip() for f in LEAVES)
    assert len(set(variables)) == len(variables), "two fields share a variable"
    assert len(LEAVES) > 40


def test_the_contract_names_its_variables_and_defaults() -> None:
    variables = {f.metadata["env"]: f.default for f in LEAVES}
    assert variables["DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/taskrelay"
    assert variables["AMQP_URL"] == "amqp://guest:guest@127.0.0.1:5672/"
    assert variables["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert variables["TASKRELAY_SECRET"] is None
    assert "TASKRELAY_CONTENT_GENERATOR" in variables
    assert variables["TASKRELAY_ALLOWED_ORIGINS"] == ()
    assert variables["TASKRELAY_WS_MAX_SOCKETS_PER_USER"] == 32
    assert variables["TASKRELAY_MODEL_MAX_IN_FLIGHT"] == 16
    assert {"TASKRELAY_MODEL", "TASKRELAY_MODEL_TIMEOUT_SECONDS", "TASKRELAY_PROMPTS"} <= set(
        variables
    )
    sdk = {"OPENAI_BASE_URL", "OPENAI_API_KEY"}  # the openai SDK's own names (docs/protocol.md §3)
    others = set(variables) - {"DATABASE_URL", "AMQP_URL", "REDIS_URL", *sdk}
    assert all(name.startswith("TASKRELAY_") for name in others)


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda f: f.metadata["env"])
def test_every_variable_is_read(leaf: dataclasses.Field[object]) -> None:
    variable, default = leaf.metadata["env"], leaf.default
    raw = SAMPLES.get(variable)
    if raw is None:
        raw = str(default + 1) if isinstance(default, int | float) else "something-else"
    settings = Settings.from_env({variable: raw})
    read = [getattr(section, leaf.name, default) for section in _sections(settings)]
    assert any(value != default for value in read), f"{variable} was not read"
    assert settings != Settings.from_env({})


def _sections(settings: Settings) -> list[object]:
    return [getattr(settings, f.name) for f in dataclasses.fields(settings)]


def test_the_configuration_reference_is_the_settings_table() -> None:
    text = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    table = text.split("<!-- settings-table:start -->\n")[1].split("\n<!-- settings-table:end")[0]
    assert table == reference_table(Settings)


def test_logging_settings_refuse_what_they_cannot_use() -> None:
    assert Settings.from_env({}).logging == LoggingSettings("auto", "INFO")
    assert Settings.from_env({"TASKRELAY_LOG_LEVEL": "debug"}).logging.level == "DEBUG"
    with pytest.raises(ConfigurationError, match="TASKRELAY_LOG_LEVEL"):
        Settings.from_env({"TASKRELAY_LOG_LEVEL": "LOUD"})
    with pytest.raises(ConfigurationError, match="TASKRELAY_LOG_FORMAT"):
        Settings.from_env({"TASKRELAY_LOG_FORMAT": "xml"})


def test_the_maintenance_database_is_derived_from_the_url() -> None:
    database = Settings.from_env({"DATABASE_URL": "postgresql+asyncpg://u:pw@h:5433/app"}).database
    assert database.admin_dsn == "postgresql://u:pw@h:5433/postgres"
    assert database.database_name == "app"

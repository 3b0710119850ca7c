"""Settings are read once from the environment: defaults, accepted forms, clear errors."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings


def test_defaults_are_the_contract() -> None:
    settings = Settings.from_env({})
    assert settings.database.url == "postgresql://postgres@127.0.0.1:5432/taskrelay"
    assert settings.broker.url == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    assert settings.auth.secret is None
    assert settings.worker.content_generator == "shared.content:placeholder_generator"
    assert settings.api.allowed_origins == ()


@pytest.mark.parametrize("url", ["postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"])
def test_both_database_url_forms(url: str) -> None:
    database = Settings.from_env({"DATABASE_URL": url}).database
    assert database.sqlalchemy_url == "postgresql+asyncpg://u@h:5432/db"
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

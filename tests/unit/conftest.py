"""Fixtures every unit test of a service may ask for: a fresh in-memory database (the fake unit
of work's), and the ContentJob tests' lease heartbeat."""

from __future__ import annotations

import pytest

from tests.unit.content_jobs import Beat
from tests.unit.fakes import FakeDatabase


@pytest.fixture(name="db")
def fixture_db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture(name="beat")
def fixture_beat() -> Beat:
    return Beat()

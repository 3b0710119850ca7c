"""The PostgreSQL adapter: tables, the engine factory, the unit of work and its repositories."""

from shared.adapters.postgres.engine import create_engine
from shared.adapters.postgres.uow import UnitOfWork, UnitOfWorkFactory

__all__ = ["UnitOfWork", "UnitOfWorkFactory", "create_engine"]

"""Database access: tables, the engine factory, the unit of work and its repositories."""

from shared.db.engine import create_engine
from shared.db.uow import UnitOfWork, UnitOfWorkFactory

__all__ = ["UnitOfWork", "UnitOfWorkFactory", "create_engine"]

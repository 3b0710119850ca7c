"""Database access: tables, the engine factory, the unit of work and its repositories."""

from shared.db.abstract import AbstractUnitOfWork, AbstractUnitOfWorkFactory
from shared.db.engine import create_engine
from shared.db.uow import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "AbstractUnitOfWork",
    "AbstractUnitOfWorkFactory",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "create_engine",
]

"""The PostgreSQL adapter: tables, the unit of work and its repositories, all on asyncpg.

SQLAlchemy describes the schema (`tables.py`) for Alembic's migrations (`migrate.py`) and runs
nothing else.
"""

from shared.adapters.postgres.uow import UnitOfWork, UnitOfWorkFactory

__all__ = ["UnitOfWork", "UnitOfWorkFactory"]

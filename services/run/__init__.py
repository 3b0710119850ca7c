"""`taskrelay run`: the whole system on one machine, in the foreground."""

from services.run.supervisor import run_system

__all__ = ["run_system"]

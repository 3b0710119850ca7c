"""`taskrelay demo`: a task that partly fails, watched live, retried, watched to completion."""

from services.demo.session import run_demo

__all__ = ["run_demo"]

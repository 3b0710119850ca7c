"""`taskrelay admin`: what an operator paged at night needs, without SQL or the broker's UI.

`outbox` (the backlog and the parked rows, and their replay), `dead-letters` (the dead-lettered
job messages, their replay or their drop) and `tasks` (unfinished or failed tasks, and their
retry or cancel). Each reads and acts through the product's own code: the relay's outbox
statements, the broker topology, and the task services the HTTP routes call, so a status
changes only through the state machine and a message goes out only through the outbox or back
to the queue it came from. See docs/operations.md ("Operating it").
"""

from services.admin.parser import add_admin_parser

__all__ = ["add_admin_parser"]
"""`services.admin.commands.run_admin` runs a parsed command; it is imported only then, so the
drivers it needs do not slow every other `taskrelay` command's start."""

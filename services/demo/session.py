"""`taskrelay demo`: create a task whose generation partly fails, watch it over the WebSocket
with a progress bar, retry it, and watch the retry complete: the seed story, fixed, live.

It talks to a running system only through its public HTTP API and WebSocket, like a browser.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from services.client import ApiClient
from services.demo.generator import DEMO_ROADMAP, demo_concepts
from shared.domain import FINAL
from shared.service.auth import issue_token


@dataclass
class Progressing:
    """What the demo knows of the task, from the snapshot and every frame after it."""

    status: str = "pending"
    seq: int = 0
    done: int = 0
    failed: int = 0
    total: int = 0
    error: str | None = None
    steps: list[str] = field(default_factory=list)

    def apply(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "snapshot":
            task = frame["task"]
            self.status, self.seq, self.error = task["status"], frame["seq"], task["error_message"]
            items = task["items"]
            self.done, self.failed, self.total = items["completed"], items["failed"], items["total"]
        elif frame.get("type") == "progress" and frame["seq"] > self.seq:
            self.status, self.seq = frame["status"], frame["seq"]
            self.steps.append(frame["step"])
            if self.status in FINAL:
                self.error = frame.get("message")
            data = frame.get("data") or {}
            if "completed_items" in data:
                self.done, self.failed = data["completed_items"], data["failed_items"]
                self.total = data.get("total_items", self.total)


async def run_demo(api_url: str, secret: str, give_up_after: float) -> int:
    console = Console(soft_wrap=True)
    client = ApiClient(api_url, issue_token(secret, "demo", 3600))
    if not await client.ready():
        raise client.unreachable("no answer", "Start the system with: taskrelay run")
    task = await client.create_task(DEMO_ROADMAP, demo_concepts(), ["tutorial"])
    task_id = task["task_id"]
    console.print(f"created task {task_id}: 21 items, 10 of them fail on their first attempt")
    state = Progressing()
    try:
        async with asyncio.timeout(give_up_after):
            await _watch(client.ws_url(task_id), state, console, "generating", after=0)
            console.print(
                f"status: {state.status} ({state.done} completed, {state.failed} failed)"
                f" - {state.error}"
            )
            retry = await client.retry(task_id)
            message = f"Retrying {retry['total_items']} failed content items"
            console.print(f"retry accepted: status {retry['task']['status']} - {message}")
            await _watch(client.ws_url(task_id), state, console, "retrying", after=state.seq)
    except TimeoutError:
        console.print(f"timed out after {give_up_after:.0f}s; last status: {state.status}")
        return 1
    console.print(f"status: {state.status} ({state.done} of {state.total} completed)")
    console.print(f"task page: {client.page_url(task_id)}")
    return 0 if state.status == "completed" else 1


async def _watch(url: str, state: Progressing, console: Console, label: str, after: int) -> None:
    """Follow the task until it is final with a seq above `after`; reconnect and resync."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        shown = bar.add_task(label, total=None)
        while not (state.status in FINAL and state.seq > after):
            try:
                async with connect(url, open_timeout=10) as socket:
                    await _follow(socket, state, after, lambda: _show(bar, shown, label, state))
            except (ConnectionClosed, WebSocketException, OSError):
                await asyncio.sleep(0.5)  # the gateway went away: reconnect, resync


async def _follow(socket: ClientConnection, state: Progressing, after: int, show: Any) -> None:
    async for raw in socket:
        state.apply(json.loads(raw))
        show()
        if state.status in FINAL and state.seq > after:
            return


def _show(bar: Progress, shown: Any, label: str, state: Progressing) -> None:
    bar.update(
        shown,
        total=state.total or None,
        completed=state.done + state.failed,
        description=f"{label}: {state.status}",
    )

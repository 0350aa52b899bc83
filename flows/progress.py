"""Progress reporting from flows to whoever is watching (the CLI's progress bar).

Flows call ``report(stage, done, total)`` as shard tasks finish; the CLI
installs a rich progress bar with ``cli_progress``. Outside the CLI nothing
is installed and ``report`` is a no-op (Prefect's UI shows task runs).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_listener: Callable[[str, int, int], None] | None = None
_lock = threading.Lock()


def report(stage: str, done: int, total: int) -> None:
    listener = _listener
    if listener is not None:
        with _lock:
            listener(stage, done, total)


@contextlib.contextmanager
def cli_progress(flow: str) -> Iterator[None]:
    """A rich progress bar: one line per stage, advancing per shard."""
    global _listener
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # stderr: stdout carries the result (``--json`` must print JSON only).
    progress = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True))
    tasks: dict[str, int] = {}

    def listener(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    _listener = listener
    progress.start()
    try:
        yield
    finally:
        progress.stop()
        _listener = None

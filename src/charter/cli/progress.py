"""A progress bar for long work (re-wrapping the data keys, walking the audit chain).

It is drawn on a terminal only: under `--json`, or with stdout sent to a file or a pipe, a
command prints its result and nothing else. The features report progress through a plain
callback, `progress(done, total)`, and never import Rich.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

Report = Callable[[int, int], None]


def on_terminal() -> bool:
    """Whether a person is watching: stdout and stderr are both a terminal."""
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(description: str, *, quiet: bool = False) -> Iterator[Report | None]:
    """A `progress(done, total)` callback that draws a bar on stderr while the block runs
    and clears it at the end; None (nothing to report to) when `quiet` or off a terminal."""
    if quiet or not on_terminal():
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report

"""What a training run shows while it runs: a live bar on a terminal, one line per epoch in logs."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text


class SamplesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} samples/s" if task.speed else "- samples/s", style="progress.data.speed")


class ProgressBar:
    """Samples trained of the whole run. Only rank 0 shows it; off a terminal (dvc repro's log, tests) only its
    final state shows, and no refresh thread runs."""

    def __init__(self, enabled: bool, total: int, completed: int) -> None:
        columns = (
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), SamplesPerSecond(),
            TimeRemainingColumn(),
        )
        console = Console(stderr=True)
        self.enabled = enabled
        self.progress = Progress(
            *columns, console=console, disable=not enabled, auto_refresh=console.is_terminal, refresh_per_second=4
        )
        self.task = self.progress.add_task("train", total=total, completed=min(completed, total))

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def advance(self, samples: int) -> None:
        self.progress.update(self.task, advance=samples)

    def print(self, line: str) -> None:
        """A line that stays, above the bar."""
        if self.enabled:
            self.progress.console.print(line)

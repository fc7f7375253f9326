"""What every suite of ``tidal bench`` hands back: its tables, its data, its figure and its targets.

A suite is a pure function of :class:`SuiteOptions` (the replays are seeded); the command writes
what it returns (tidal/bench/suites/output.py) and prints its markdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


class SuiteInputError(Exception):
    """A suite's input (a trace) is missing or unreadable; the message says which and where."""


@dataclass(frozen=True)
class SuiteOptions:
    """What ``tidal bench`` passes every suite besides the policy comparison."""

    traces_dir: Optional[Path] = None
    """Folder laid out like ../shared/traces (None: that one)."""
    seed: int = 0
    """Seed of the replays (sampled traces, cold-start jitter)."""
    quick: bool = False
    """A smaller replay of the same method (``tidal bench --quick``)."""
    workers: int = 1
    """Processes a suite may run replays in."""


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: what it asks, and whether this run met it."""

    name: str
    met: bool
    detail: str = ""


@dataclass(frozen=True)
class SuiteResult:
    """One suite's output: markdown tables, JSON-serialisable rows, a PNG figure, its targets."""

    name: str
    title: str
    markdown: str
    data: Any
    figure_png: Optional[bytes] = None
    targets: tuple[Target, ...] = field(default_factory=tuple)

    def verdict_lines(self) -> list[str]:
        """One line per target: met or missed, and the numbers behind it."""
        return [f"- {t.name}: {'met' if t.met else 'MISSED'}{f' ({t.detail})' if t.detail else ''}"
                for t in self.targets]

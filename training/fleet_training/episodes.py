"""Alert rules and episodes, exactly as the service runs them (a Python mirror of
``service/src/alerts/rule.rs`` and ``service/src/alerts/episode.rs``), so that training can
measure what a rule would have raised on held-out engines.

A rule has a direction (``below``: holds while the value is below a threshold, e.g. remaining
life; ``above``: an anomaly score), one threshold per severity and a hysteresis margin. An
episode is **raised** when a value first crosses a threshold, **escalated** when a later one
crosses a more severe threshold, and **cleared** when a value is back beyond the least severe
threshold by the margin; nothing else is emitted. Values and thresholds are float32, as in the
service (``first + hysteresis`` is a float32 sum there too); non-finite values change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEVERITIES = ("info", "warning", "critical")  # ordered, as the Rust enum
DIRECTIONS = ("below", "above")


@dataclass(frozen=True)
class Rule:
    """An alert rule: ``levels`` maps severity -> threshold."""

    name: str
    direction: str
    levels: dict[str, float]
    hysteresis: float = 0.0

    def __post_init__(self):
        # The checks of AlertRule::validate.
        if self.direction not in DIRECTIONS:
            raise ValueError(f"rule {self.name}: direction must be one of {DIRECTIONS}")
        if not np.isfinite(self.hysteresis) or self.hysteresis < 0:
            raise ValueError(f"rule {self.name}: hysteresis must be a finite number >= 0")
        if not self.levels:
            raise ValueError(f"rule {self.name}: no levels")
        for sev, thr in self.levels.items():
            if sev not in SEVERITIES or not np.isfinite(thr):
                raise ValueError(f"rule {self.name}: bad level {sev}={thr}")
        ordered = self.sorted_levels()
        for (_, lower), (sev, higher) in zip(ordered, ordered[1:]):
            stricter = higher < lower if self.direction == "below" else higher > lower
            if not stricter:
                raise ValueError(f"rule {self.name}: the {sev} threshold must be "
                                 f"{self.direction} the less severe one")

    def sorted_levels(self) -> list[tuple[str, np.float32]]:
        """(severity, float32 threshold), least severe first."""
        return [(s, np.float32(self.levels[s])) for s in SEVERITIES if s in self.levels]

    def level(self, value: np.float32) -> str | None:
        """The most severe level whose threshold ``value`` crosses (strictly), if any."""
        for sev, thr in reversed(self.sorted_levels()):
            if (value < thr) if self.direction == "below" else (value > thr):
                return sev
        return None

    def clears(self, value: np.float32) -> bool:
        """Whether ``value`` is back beyond the least severe threshold by the margin."""
        first = self.sorted_levels()[0][1]
        margin = np.float32(self.hysteresis)
        if self.direction == "below":
            return bool(value >= np.float32(first + margin))
        return bool(value <= np.float32(first - margin))

    def describe(self) -> str:
        sign = "<" if self.direction == "below" else ">"
        levels = ", ".join(f"{s} {sign} {float(t):g}" for s, t in self.sorted_levels())
        back = "+" if self.direction == "below" else "-"
        first = float(self.sorted_levels()[0][1])
        return (f"{levels}; cleared at {'>=' if self.direction == 'below' else '<='} "
                f"{first:g} {back} {self.hysteresis:g}")


@dataclass(frozen=True)
class Transition:
    index: int       # position in the series
    kind: str        # "raised", "escalated" or "cleared"
    severity: str    # after the transition (the one it had, when cleared)


def transitions(rule: Rule, values) -> list[Transition]:
    """Run one aircraft's series of values through the rule (``episode::step`` per value,
    starting with no open episode); the transitions in order."""
    out: list[Transition] = []
    open_severity: str | None = None
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    for i, v in enumerate(np.asarray(values, dtype=np.float32)):
        if not np.isfinite(v):
            continue
        level = rule.level(v)
        if open_severity is None:
            if level is not None:
                open_severity = level
                out.append(Transition(i, "raised", level))
        elif level is not None and rank[level] > rank[open_severity]:
            open_severity = level
            out.append(Transition(i, "escalated", level))
        elif rule.clears(v):
            out.append(Transition(i, "cleared", open_severity))
            open_severity = None
    return out


@dataclass(frozen=True)
class Episode:
    start: int           # index of the raising value
    end: int | None      # index of the clearing value; None: still open after the series
    severity: str        # the worst severity reached


def episodes(rule: Rule, values) -> list[Episode]:
    """The episodes of one series (from :func:`transitions`)."""
    out: list[Episode] = []
    start = severity = None
    for t in transitions(rule, values):
        if t.kind == "raised":
            start, severity = t.index, t.severity
        elif t.kind == "escalated":
            severity = t.severity
        else:
            out.append(Episode(start, t.index, severity))
            start = None
    if start is not None:
        out.append(Episode(start, None, severity))
    return out

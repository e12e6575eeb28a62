"""Percentiles, timers and the result table."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def p50(values: list[float]) -> float:
    return percentile(values, 50)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Row:
    figure: str
    jupycell: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = ""
    met: bool | None = None


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: object, **kwargs: object) -> Row:
        row = Row(*args, **kwargs)  # type: ignore[arg-type]
        self.rows.append(row)
        print(f"  {row.figure}: {row.jupycell} (baseline {row.baseline}, ratio {row.ratio})", flush=True)
        return row

    def markdown(self) -> str:
        header = "| figure | JupyCell | baseline | ratio | target | met |\n|---|---|---|---|---|---|\n"
        lines = []
        for r in self.rows:
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(f"| {r.figure} | {r.jupycell} | {r.baseline} | {r.ratio} | {r.target} | {met} |")
        return header + "\n".join(lines) + "\n"

    def text(self) -> str:
        cols = ["figure", "JupyCell", "baseline", "ratio", "target", "met"]
        data = [
            [r.figure, r.jupycell, r.baseline, r.ratio, r.target, "" if r.met is None else ("yes" if r.met else "NO")]
            for r in self.rows
        ]
        widths = [max(len(c), *(len(d[i]) for d in data)) if data else len(c) for i, c in enumerate(cols)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [fmt.format(*cols), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*d) for d in data]
        return "\n".join(out)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base and not math.isnan(base) else "—"

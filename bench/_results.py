"""Writing results in the house format and printing them as a rich table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "machine", "median", "percentile", "write_result"]

RESULTS_DIR = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "python": platform.python_version(), "cores": cores, "loadavg_1m": load}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_result(
    name: str,
    *,
    params: dict[str, Any],
    metrics: dict[str, Any],
    baseline: dict[str, Any],
    ratio: dict[str, Any],
    notes: str = "",
) -> Path:
    from rich.console import Console
    from rich.table import Table

    result = {
        "name": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "params": params,
        "metrics": metrics,
        "baseline": baseline,
        "ratio": ratio,
        "notes": notes,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"bench {name}")
    table.add_column("group")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for group in ("metrics", "baseline", "ratio"):
        for key, value in result[group].items():
            table.add_row(group, key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)
    return path

from __future__ import annotations

import importlib
import sys

BENCHMARKS = (
    "engine_baseline",
    "scheduler",
    "scheduler_big",
    "syscalls",
    "tools",
    "semfs",
    "taskmem",
    "security",
    "confinement",
    "cli",
    "tui",
    "agentic",
    "agents",
)


def main(argv: list[str]) -> int:
    names = list(BENCHMARKS) if not argv or argv == ["all"] else argv
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

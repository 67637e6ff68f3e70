"""Helpers shared by the benchmarks: timing commands, medians, the peers' environment."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANCHORS = REPO / ".." / "shared" / "tools" / "anchors.sh"
# The console script users type (``python -m strata`` would add runpy to every timing).
STRATA = [str(Path(sys.executable).with_name("strata"))]


def peers_env() -> dict[str, str]:
    """Start the peers (Docker, registry, ...) with anchors.sh and return their environment."""
    out = subprocess.run(["bash", str(ANCHORS), "up"], capture_output=True, text=True, check=True)
    env = dict(os.environ)
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value
    return env


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Run a command to completion and return its wall time in seconds; fail loudly."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
        )
    return elapsed


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def drop_file(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)

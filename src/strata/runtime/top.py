"""``docker top``: the host's ``ps`` (``-ef`` unless told), its rows kept for the container's
processes, as Docker's daemon does it.

A container's processes are those in its init's pid namespace (every backend gives a container
its own): found from ``/proc`` alone, so ``top`` works the same under runc and the chroot
backend, without asking for cgroup paths.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from strata.errors import Conflict, StrataError, ToolError


def namespace_pids(init_pid: int) -> set[int]:
    """The host pids of the processes in ``init_pid``'s pid namespace (empty if it is gone)."""
    try:
        wanted = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return set()
    if wanted == os.readlink("/proc/self/ns/pid"):
        return {init_pid}  # no namespace of its own: only what we know is it
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == wanted:
                found.add(int(entry))
        except OSError:
            continue  # gone meanwhile, or a kernel thread we may not look at
    return found


@dataclass(frozen=True, slots=True)
class Table:
    """``ps`` output cut into columns: its titles and the kept rows."""

    titles: list[str]
    rows: list[list[str]]


def ps_table(args: Sequence[str], pids: set[int]) -> Table:
    """Run ``ps ARGS`` (``-ef`` without any) and keep the rows of ``pids`` (Docker's parse: a
    row with more fields than titles has the rest joined into its last column)."""
    argv = ["ps", *(args or ["-ef"])]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ToolError(f"ps: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip()
        raise ToolError(f"ps: exit status {proc.returncode}: {detail}")
    lines = proc.stdout.splitlines()
    if not lines:
        raise StrataError("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise StrataError("Couldn't find PID field in ps output")
    where = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if len(fields) > len(titles):
            fields = [*fields[: len(titles) - 1], " ".join(fields[len(titles) - 1 :])]
        try:
            pid = int(fields[where])
        except (ValueError, IndexError):
            raise StrataError(f"Unexpected pid '{fields[where]}'") from None
        if pid in pids:
            rows.append(fields)
    return Table(titles, rows)


def require_pids(pids: set[int], container_id: str) -> set[int]:
    if not pids:
        raise Conflict(f"Container {container_id} is not running")
    return pids


def render(table: Table) -> str:
    """Docker's client's table: tabwriter with minimum width 20 and padding 3; the last
    column unpadded."""
    lines = [table.titles, *table.rows]
    count = max(len(line) for line in lines)
    widths = [20] * count
    for line in lines:
        for i, cell in enumerate(line[:-1]):
            widths[i] = max(widths[i], len(cell) + 3)
    out = []
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
        out.append("".join(cells) + (line[-1] if line else ""))
    return "".join(f"{line}\n" for line in out)

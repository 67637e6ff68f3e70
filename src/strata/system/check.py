"""``system check``: every check in the order its repairs must run, and the repairs.

The database's integrity comes first, alone: every other check reads it. Repairs then go from
the outside in: containers first (their reconciliation unmounts), then mounts, dead commands'
scratch directories, snapshots (a directory is removed only once nothing is mounted on it),
ingests and leases, blobs, and rows last. Each repair looks again before it acts, under the same
lock or transaction that the command it could race with uses, so a command that started
meanwhile keeps what it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from strata.errors import StrataError
from strata.image.root import StoreRoot
from strata.system.content_checks import (
    check_blobs,
    check_database,
    check_images,
    check_integrity,
)
from strata.system.context import CheckContext
from strata.system.debris_checks import check_ingests, check_leases, check_scratch
from strata.system.network_checks import check_networks
from strata.system.problem import Problem
from strata.system.runtime_checks import check_containers, check_mounts
from strata.system.snapshot_checks import check_snapshots
from strata.system.volume_checks import check_volumes

__all__ = ["CHECKS", "CheckReport", "check"]

CHECKS: tuple[Callable[[CheckContext], Iterator[Problem]], ...] = (
    check_containers,
    check_networks,  # net (issue 12): after the reconciliation, which tears down itself
    check_mounts,
    check_scratch,
    check_snapshots,
    check_volumes,
    check_ingests,
    check_leases,
    check_blobs,
    check_images,
    check_database,
)


@dataclass(slots=True)
class CheckReport:
    """What a check found and, with repair, what was done and what could not be."""

    problems: list[Problem] = field(default_factory=list)
    repaired: list[tuple[Problem, str]] = field(default_factory=list)
    unrepaired: list[tuple[Problem, str]] = field(default_factory=list)


def check(
    root: StoreRoot,
    *,
    quick: bool = False,
    repair: bool = False,
    on_problem: Callable[[Problem], None] | None = None,
    on_repair: Callable[[Problem, str, bool], None] | None = None,
) -> CheckReport:
    """Run every check over ``root``; with ``repair``, fix each problem that can be fixed.

    ``on_problem`` hears each problem as it is found; ``on_repair`` each repair (its text and
    whether it succeeded) as it is done.
    """
    ctx = CheckContext(root, quick=quick)
    report = CheckReport()
    # Every other check reads the database: a damaged one is reported alone, repaired by no one.
    broken = list(check_integrity(ctx))
    for problem in broken:
        report.problems.append(problem)
        if on_problem is not None:
            on_problem(problem)
        if repair:
            report.unrepaired.append((problem, problem.advice))
            if on_repair is not None:
                on_repair(problem, problem.advice, False)
    if broken:
        return report
    for run in CHECKS:
        found = list(run(ctx))
        for problem in found:
            report.problems.append(problem)
            if on_problem is not None:
                on_problem(problem)
        if not repair:
            continue
        # Each check's repairs before the next check looks: a container reconciled unmounts
        # its rootfs, which the mount check then finds clean.
        for problem in found:
            if problem.repair is None:
                text, done = problem.advice or "strata cannot repair this", False
            else:
                try:
                    text, done = problem.repair(), True
                except (StrataError, OSError) as err:
                    text, done = str(err), False
            (report.repaired if done else report.unrepaired).append((problem, text))
            if on_repair is not None:
                on_repair(problem, text, done)
    return report

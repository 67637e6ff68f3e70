"""Why a step missed the cache, in one line: the part of its key that differs from before.

The nearest earlier build of the step is, in order: a record on the same parent image with the
same instruction as written (its args, sources or expansion differ), then the same step of the
last build of this Dockerfile in this context (its instruction or its parent differ). Records
of other Dockerfiles on the same parent are not compared: they are not an earlier build of
this step. A step whose parent was built in this run misses because of that step, named.

A dry run (``--explain``) builds nothing, so a stage that would rebuild has no new image to
look into: the steps that use it (``FROM stage``, ``COPY --from=stage``) would run because of
it, and say so, instead of reading the stale image it had before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from strata.builder.cache import BuildCache, StepKey
from strata.dockerfile.commands import Add, Copy

_MAX_TEXT = 60


def short_text(text: str) -> str:
    """An instruction cut to fit on the explanation line."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def args_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """``build arg VERSION changed 1.2 → 1.3`` for each arg that differs, sorted by name."""
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append(f"build arg {name} no longer set (was {old[name]})")
        elif name not in old:
            out.append(f"build arg {name} set to {new[name]}")
        elif old[name] != new[name]:
            out.append(f"build arg {name} changed {old[name]} → {new[name]}")
    return out


def stage_rebuilds(name: str, step: int) -> str:
    """Why a step on stage ``name`` would run: that stage rebuilds, its new image made by
    ``step`` (the last of its steps that would run)."""
    return f"depends on stage '{name}', which rebuilds (step {step})"


def unplannable(
    step: Copy | Add,
    expand: Callable[[str], str],
    dirty: Mapping[str, int | None],
    fresh: int | None,
) -> str | None:
    """In a dry run, why a COPY/ADD would run without planning it, or None to plan it.

    Planning reads a filesystem that a dry run has not built: the ``--from`` stage when it
    rebuilds, or the parent (for a ``--chown`` by name) when a step before this one would run.
    """
    if isinstance(step, Copy) and step.from_stage:
        name = expand(step.from_stage)
        built = dirty.get(name.lower())
        if built is not None:
            return stage_rebuilds(name, built)
    if fresh is not None and step.chown:
        by_name = not all(part.isdigit() for part in expand(step.chown).split(":"))
        return f"parent layer changed (step {fresh})" if by_name else None
    return None


SourcesExplainer = Callable[[Mapping[str, Any], Mapping[str, Any]], str]


def explain_miss(
    key: StepKey,
    *,
    cache: BuildCache,
    parent_step: int | None,
    previous: Mapping[str, Any] | None,
    sources: Mapping[str, Any] | None,
    explain_sources: SourcesExplainer,
) -> str:
    """The reason ``key`` missed, without the ``cache miss:`` prefix.

    ``parent_step`` is the step of this build that made the parent, if it was built now;
    ``previous`` the same step of the last build of this Dockerfile (lineage), if any;
    ``sources`` the step's source table (COPY/ADD).
    """
    if parent_step is not None:
        return f"parent layer changed (step {parent_step})"
    siblings = cache.children(key.parent)
    for record in siblings:
        if record.original != key.original:
            continue
        changed = args_changes(record.args, key.args)
        if changed:
            return "; ".join(changed)
        if record.instruction != key.instruction:
            return f"instruction expands differently (was: {short_text(record.instruction)})"
        if key.sources is not None and record.sources is not None:
            old_files = record.sources.get("files", {})
            new_files = (sources or {}).get("files", {})
            text = explain_sources(old_files, new_files)
            if text:
                return text
            return "sources changed"
        break
    if previous is not None:
        if previous.get("original") != key.original:
            return f"instruction changed (was: {short_text(str(previous.get('original')))})"
        if previous.get("parent") != key.parent:
            return f"parent image changed (was {short_id(str(previous.get('parent')))})"
    return "no earlier build of this step"

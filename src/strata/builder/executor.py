"""The stage executor: Docker's classic builder, one image per step, each step cached.

Stages run in order up to ``--target``. A step's key (`strata.builder.cache.StepKey`) is looked
up first; on a hit the cached image is the step's result, on a miss the step runs (RUN in a
container, COPY/ADD straight into a snapshot, anything else on the config alone) and the
reason for the miss is reported. ``--explain`` walks the same path without running anything.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strata.builder.batch import StepBatch
from strata.builder.cache import BuildCache, StepKey
from strata.builder.context.files import read_build_file
from strata.builder.events import BuildEvents, BuildOptions, BuildResult
from strata.builder.explain import explain_miss, stage_rebuilds, unplannable
from strata.builder.hold import BuildHold
from strata.builder.images import StepImage, store_named, store_step
from strata.builder.platforms import check_stages
from strata.builder.stage import METADATA, StageState, apply_metadata, begin_stage
from strata.builder.steps import StepRunner
from strata.diff.chain import chain_ids, layer_key
from strata.dockerfile.commands import Add, Copy, From, Instruction, Run, Stage, Workdir
from strata.dockerfile.instructions import parse_stages
from strata.dockerfile.parser import parse
from strata.dockerfile.shell import ShellLex
from strata.errors import BuildError, DockerfileError, ImageNotFound
from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.config import History, ImageConfig, format_time
from strata.oci.descriptor import Platform
from strata.oci.reference import Reference, parse_reference
from strata.runtime.lifecycle import Containers
from strata.store.leases import Lease


class Builder:
    """Builds Dockerfiles into images of one store root."""

    def __init__(self, root: StoreRoot, events: BuildEvents) -> None:
        self.root = root
        self.events = events
        self.images = ImageStore(root)
        self.service = Containers(root)
        self.cache = BuildCache(root.db)
        # The build's lease: everything the build reads or makes is held by it until it ends.
        self.lease: Lease | None = None
        self._hold: BuildHold | None = None
        self._batch: StepBatch | None = None

    @property
    def hold(self) -> BuildHold:
        """What the running build holds (see `strata.builder.hold`)."""
        if self._hold is None:
            raise BuildError("internal error: no build is running")
        return self._hold

    @property
    def batch(self) -> StepBatch:
        """The step images of the running build not written yet (see `strata.builder.batch`)."""
        if self._batch is None:
            raise BuildError("internal error: no build is running")
        return self._batch

    def build(self, options: BuildOptions) -> BuildResult | None:
        """Build; the final image (None with ``explain``, which builds nothing)."""
        tags = [_tag(t) for t in options.tags]
        if options.network not in ("host", "none", "default"):
            raise BuildError(f"invalid --network {options.network!r}: use host or none")
        dockerfile = options.dockerfile or options.context / "Dockerfile"
        if not options.context.is_dir():
            raise BuildError(f"unable to prepare context: path {str(options.context)!r} not found")
        text = _read_dockerfile(dockerfile, options.context)
        df = parse(text, filename=dockerfile.name)
        meta, stages = parse_stages(df)
        lex = ShellLex(df.escape)
        meta_values = _meta_args(meta, options.build_args, lex)
        chosen = _stages_up_to(stages, options.target)
        check_stages(chosen, meta_values, lex)  # FROM --platform: this machine's, or an error
        from strata.builder.context.scan import load_ignore, scan_context

        context = scan_context(options.context, load_ignore(options.context), dockerfile=dockerfile)
        self.events.context(context.tar_size)
        identity = hashlib.sha256(
            f"{options.context.resolve()}\0{dockerfile.resolve()}\0{options.target}".encode()
        ).hexdigest()
        run = _Run(self, options, lex, meta_values, context, self.cache.lineage(identity))
        run.total = sum(1 + len(s.instructions) for s in chosen)
        with self.root.lease() as held:
            self.lease = held
            self._hold = BuildHold(held)
            self._batch = StepBatch(self.images, self._hold, self.cache)
            try:
                try:
                    for stage in chosen:
                        run.stage(stage)
                except Exception:
                    # The steps before the failure are built and cached, as in Docker.
                    with contextlib.suppress(Exception):
                        self._batch.flush()
                    raise
                final = run.current
                if options.explain:
                    return None
                if final is None or final.image is None:
                    raise BuildError("the build made no image (FROM scratch with nothing on it)")
                # Still under the lease: a prune meanwhile may have removed the image's row
                # (not its blobs, which the lease holds), so it is recorded again with its tags.
                image = store_named(self.images, self._batch, final, tags)
            finally:
                run.steps.close()
                self.lease = None
                self._hold = None
                self._batch = None
        self.cache.set_lineage(identity, run.lineage)
        return BuildResult(
            image_id=str(image.id),
            manifest_digest=str(image.manifest_digest),
            tags=tuple(r.familiar for r in tags),
            steps=run.number,
            cached=run.hits,
        )


class _Run:
    """One build: the steps so far, the stages built, what was fresh."""

    def __init__(
        self,
        builder: Builder,
        options: BuildOptions,
        lex: ShellLex,
        meta: dict[str, str | None],
        context: Any,
        previous: list[dict[str, Any]],
    ) -> None:
        self.b = builder
        self.options = options
        self.lex = lex
        self.meta = meta
        self.context = context
        self.previous = previous
        self.lineage: list[dict[str, Any]] = []
        self.stages: dict[str, StepImage] = {}
        self.stage_dirty: dict[str, int | None] = {}
        self.current: StepImage | None = None
        self.number = 0
        self.total = 0
        self.hits = 0
        # The step of this build that made the current parent, if it ran now (a miss).
        self.fresh: int | None = None
        self.steps = StepRunner(builder, options, context)

    # -- stages -----------------------------------------------------------------------------

    def stage(self, stage: Stage) -> None:
        self.fresh = None
        current = self.from_(stage.from_)
        base_config = current.config
        config = begin_stage(base_config)
        state = StageState(config=config, build_args=self._args(), lex=self.lex)
        # The triggers are the base's, for this build to run: no child image inherits them.
        self.current = replace(current, config=config)
        triggers = base_config.config.on_build
        if triggers:
            self.b.events.triggers(len(triggers))
            from strata.dockerfile.instructions import parse_instruction
            from strata.dockerfile.parser import parse as parse_text

            for trigger in triggers:
                node = parse_text(trigger, filename="ONBUILD").nodes[0]
                self.instruction(state, parse_instruction(node, filename="ONBUILD"), counted=False)
        for instruction in stage.instructions:
            self.instruction(state, instruction)
        done = self.current
        assert done is not None
        self.stages[str(stage.index)] = done
        self.stage_dirty[str(stage.index)] = self.fresh
        if stage.name:
            self.stages[stage.name] = done
            self.stage_dirty[stage.name] = self.fresh

    def _args(self) -> dict[str, str]:
        values = {k: v for k, v in self.meta.items() if v is not None}
        return {**values, **self.options.build_args}

    def from_(self, step: From) -> StepImage:
        self.number += 1
        self.b.events.step(self.number, self.total, step.node.original)
        env = {k: v for k, v in self.meta.items() if v is not None}
        name = self.lex.process_word(step.image, env)
        shown = False
        if not name:
            raise BuildError(
                f"Dockerfile:{step.node.start_line}: base name ({step.image}) should not be blank"
            )
        if name.lower() in self.stages:
            current = self.stages[name.lower()].exact()  # its history goes on
            self.fresh = self.stage_dirty.get(name.lower())
            if self.options.explain and self.fresh is not None:
                # Its image is the one from before: the stage's new one is not built.
                reason = stage_rebuilds(name, self.fresh)
                self.b.events.plan(self.number, step.node.original, False, reason)
                shown = True
        elif name == "scratch":
            platform = Platform.current()
            config = ImageConfig(architecture=platform.architecture, os=platform.os)
            current = StepImage(None, config, (), None)
        else:
            missing = BuildError(
                f"FROM {name}: No such image: {name} (build from a local image: pull,"
                " load or bootstrap it first)"
            )
            try:
                image = self.b.images.get(name)
            except ImageNotFound:
                raise missing from None
            found = self.b.hold.image(self.b.images, image)
            if found is None:  # removed between the lookup and the lease
                raise missing
            current = StepImage(image, self.b.images.config(image), found, None)
        if current.image is not None and not shown:  # FROM scratch has no image to show
            self.b.events.image(_short(current.id))
        self.lineage.append({"original": step.node.original, "parent": "", "image": current.id})
        return current

    # -- steps ------------------------------------------------------------------------------

    def instruction(self, state: StageState, step: Instruction, *, counted: bool = True) -> None:
        if counted:
            self.number += 1
            self.b.events.step(self.number, self.total, step.node.original)
        current = self.current
        assert current is not None
        state.used = set()
        epoch = self.options.epoch
        if isinstance(step, Workdir):
            config, text = apply_metadata(state, step)
            key = StepKey(current.id, text, state.used_args(), None, epoch, step.node.original)
            self._step(
                key, None, lambda: self.steps.workdir(current, config, text), computed=config
            )
        elif isinstance(step, METADATA):
            config, text = apply_metadata(state, step)
            key = StepKey(current.id, text, state.used_args(), None, epoch, step.node.original)
            self._step(key, None, lambda: self._metadata(current, config, text), computed=config)
        elif isinstance(step, Run):
            request, text, args = self.steps.run_request(state, step)
            key = StepKey(current.id, text, args, None, epoch, step.node.original)
            self._step(key, None, lambda: self.steps.run(current, request, text))
        elif (
            self.options.explain
            and isinstance(step, Copy | Add)
            and (rebuilt := unplannable(step, state.expand, self.stage_dirty, self.fresh))
        ):  # what planning it would read is not built in a dry run
            key = StepKey(current.id, step.node.original, {}, None, epoch, step.node.original)
            self._step(key, None, None, rebuilt)
        elif isinstance(step, Copy | Add):
            plan = self.steps.copy_plan(state, step, self.stages, self.stage_dirty, current)
            try:
                key = StepKey(
                    current.id, plan.key_text, state.used_args(), plan.digest, epoch,
                    step.node.original,
                )  # fmt: skip
                self._step(key, plan.table, lambda: self.steps.copy(current, plan))
            finally:
                plan.close()
        else:  # FROM inside a stage cannot happen: parse_stages splits there
            raise DockerfileError(f"Dockerfile:{step.node.start_line}: unexpected instruction")
        assert self.current is not None
        state.config = self.current.config

    def _step(
        self,
        key: StepKey,
        sources: dict[str, Any] | None,
        execute: Any,
        forced: str | None = None,
        *,
        computed: ImageConfig | None = None,
    ) -> None:
        """Run one step, or take its image from the cache.

        A metadata step (WORKDIR too) gives the config it ``computed``: its image, new or
        from the cache, stays in the build's batch (a cached one's stored config is read only
        if something needs its history); any other step first writes the batch (what ran
        before a RUN is cached even if the RUN fails)."""
        current = self.current
        assert current is not None
        index = self.number
        previous = self.previous[index - 1] if 0 < index <= len(self.previous) else None
        self.lineage.append(
            {"original": key.original, "parent": key.parent, "instruction": key.instruction}
        )
        record = None
        if not self.options.no_cache and self.fresh is None and forced is None:
            record = self.b.cache.lookup(key, touch=False)
        if record is not None:
            image = self._load(record.image, computed)
            if image is not None:
                self.b.batch.used(key)
                self.hits += 1
                if self.options.explain:
                    self.b.events.plan(index, key.original, True, _short(image.id))
                else:
                    self.b.events.cache_hit()
                    self.b.events.image(_short(image.id))
                self.current = image
                return
        if forced is not None:
            reason = forced
        elif self.options.no_cache:
            reason = "cache disabled (--no-cache)"
        else:
            from strata.builder.context.sums import explain_changes

            reason = explain_miss(
                key,
                cache=self.b.cache,
                parent_step=self.fresh,
                previous=previous,
                sources=sources,
                explain_sources=explain_changes,
            )
        if self.options.explain:
            self.b.events.plan(index, key.original, False, reason)
            self.fresh = index  # what follows would stand on this step's new image
            return
        self.b.events.cache_miss(reason)
        if computed is None:
            self.b.batch.flush()
        result: StepImage = execute()
        made = str(result.image.manifest_digest) if result.image else ""
        self.b.batch.record(key, made, sources)
        self.b.events.image(_short(result.id))
        self.current = result
        self.fresh = index

    def _metadata(self, current: StepImage, config: ImageConfig, text: str) -> StepImage:
        return store_step(
            self.b.images,
            current,
            config=config,
            history=History(created=self.created(), created_by=text),
            layer=None,
            top=None,
            batch=self.b.batch,
        )

    def created(self) -> str:
        when = self.options.epoch
        now = datetime.fromtimestamp(when, UTC) if when is not None else datetime.now(UTC)
        return format_time(now)

    def _load(self, manifest_digest: str, computed: ImageConfig | None) -> StepImage | None:
        """The cached image, held; with the ``computed`` config of a metadata step (its
        stored config read only when needed: `StepImage.exact`)."""
        images = self.b.images
        self.b.hold.cache_chain(images, self.b.cache, manifest_digest)
        image = images.by_manifest(manifest_digest)
        if image is None:
            return None
        layers = self.b.hold.image(images, image)
        if layers is None:  # removed meanwhile: a miss
            return None
        top = layer_key(chain_ids([la.diff_id for la in layers])[-1]) if layers else None
        if computed is None:
            return StepImage(image, images.config(image), layers, top)
        stored = image  # bound now: the closure outlives this call
        return StepImage(image, computed, layers, top, None, lambda: images.config(stored))


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _tag(text: str) -> Reference:
    ref = parse_reference(text)
    if ref.digest is not None:
        raise BuildError(f"invalid tag {text!r}: a tag cannot name a digest")
    return ref.with_default_tag()


def _read_dockerfile(path: Path, context: Path) -> str:
    data = read_build_file(path, context, f"Dockerfile {path}")
    if data is None:
        raise BuildError(f"cannot read Dockerfile {path}: no such file")
    return data.decode("utf-8", errors="surrogateescape")


def _meta_args(
    meta: tuple[Any, ...], given: dict[str, str] | Any, lex: ShellLex
) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for arg in meta:
        for name, default in arg.pairs:
            env = {k: v for k, v in values.items() if v is not None}
            fallback = lex.process_word(default, env) if default is not None else None
            values[name] = given.get(name, fallback)
    return values


def _stages_up_to(stages: tuple[Stage, ...], target: str | None) -> tuple[Stage, ...]:
    if target is None:
        return stages
    for i, stage in enumerate(stages):
        if stage.name == target.lower():
            return stages[: i + 1]
    raise BuildError(f"failed to reach build target {target} in Dockerfile")

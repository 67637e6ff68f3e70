"""The steps that touch files: RUN (through the runtime) and COPY/ADD (straight into a snapshot).

Both end the same way: the step's snapshot holds exactly what it changed, its canonical tar
becomes the layer blob, and the snapshot itself is committed as that layer's snapshot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.builder.context.hashcache import HashCache
from strata.builder.events import BuildOptions
from strata.builder.images import (
    StepImage,
    adopt_snapshot,
    layer_snapshot_key,
    scratch_dir,
    store_step,
    write_snapshot_layer,
)
from strata.builder.run import RunRequest, clean_mount_points, run_container
from strata.builder.stage import StageState
from strata.diff.compare import lower_tree
from strata.dockerfile.commands import Add, Copy, Run
from strata.dockerfile.shell import ShellLex
from strata.errors import BuildError, NotFound, StepFailed, StrataError
from strata.image.scratch import owned_name, owned_prefix
from strata.image.store import ImageLayer
from strata.oci.config import History, ImageConfig

if TYPE_CHECKING:
    from strata.builder.executor import Builder


@dataclass
class CopyStep:
    """A COPY/ADD resolved and summed, with what its key and explanation need.

    It may hold a mounted view of another stage (``--from``) or downloads: `close` it.
    """

    plan: Any  # strata.builder.copy.CopyPlan
    text: str  # the history entry, Docker's
    key_text: str  # what the key hashes: the history entry plus flags it does not show
    digest: str
    table: dict[str, Any]
    source_fresh: int | None  # the step of this build that made the --from stage, if any
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    root: Any = None  # where the sources are read: the context, or a stage's rootfs
    history: tuple[str, str] = ("", "")  # the history text before and after the sources' name

    def history_text(self) -> str:
        """The history entry with Docker's name of the sources (summed now: only a step that
        runs needs it, so a rebuild from the cache reads no file twice)."""
        from strata.builder.tarsum import docker_description

        name = docker_description(self.plan.items, self.root, self.plan.description)
        return self.history[0] + name + self.history[1]

    def close(self) -> None:
        self.stack.close()


class StepRunner:
    """Runs the file-changing steps of one build."""

    def __init__(self, builder: Builder, options: BuildOptions, context: Any) -> None:
        self.b = builder
        self.options = options
        self.context = context
        self.hashes = HashCache(builder.root.path / "build", namespace=str(options.context))
        self._dirs: set[tuple[tuple[Any, ...], str]] = set()  # (layers, path): a directory

    def close(self) -> None:
        """Remember the context's file hashes for the next build."""
        self.hashes.save()

    @property
    def snapshotter(self) -> Any:
        return self.b.service.snapshotter

    def created(self) -> str:
        from datetime import UTC, datetime

        from strata.oci.config import format_time

        when = self.options.epoch
        now = datetime.fromtimestamp(when, UTC) if when is not None else datetime.now(UTC)
        return format_time(now)

    # -- RUN --------------------------------------------------------------------------------

    def run_request(self, state: StageState, step: Run) -> tuple[RunRequest, str, dict[str, str]]:
        """The container to run, the history text (Docker's) and the build args it sees."""
        line = f"Dockerfile:{step.node.start_line}"
        if step.mounts:
            raise BuildError(f"{line}: RUN --mount is not supported by strata's builder yet")
        if step.devices or step.security != "sandbox":
            raise BuildError(f"{line}: RUN --device and --security are not supported")
        if step.shell_form:
            script = step.command[0]
            if len(step.heredocs) == 1 and _is_marker(script, step.heredocs[0].name):
                # `RUN <<EOF`: the here-document is the script (BuildKit's rule).
                script = step.heredocs[0].body
            else:
                for doc in step.heredocs:  # `RUN python3 <<EOF`: the shell reads it
                    script += "\n" + doc.content + doc.name
            args: tuple[str, ...] = (*state.shell, script)
        else:
            args = step.command
        # Every build arg of the stage with a value reaches RUN as an environment variable
        # (unless ENV set it), so each is part of the key, as in Docker's classic builder.
        env_names = {e.partition("=")[0] for e in state.config.config.env}
        build_args = {k: v for k, v in sorted(state.arg_values().items()) if k not in env_names}
        text = " ".join(args)
        if build_args:
            prefix = " ".join(f"{k}={v}" for k, v in build_args.items())
            text = f"|{len(build_args)} {prefix} {text}"
        env = (*state.config.config.env, *(f"{k}={v}" for k, v in build_args.items()))
        network = step.network if step.network in ("host", "none") else self.options.network
        request = RunRequest(
            args=args,
            env=env,
            workdir=state.config.config.working_dir or "/",
            user=state.config.config.user,
            network=network,  # "default": the host's network, with the container's own name
            runtime=self.options.runtime,
        )
        return request, text, build_args

    def run(self, parent: StepImage, request: RunRequest, text: str) -> StepImage:
        parent = self.unpacked(parent)
        events = self.b.events
        service = self.b.service
        with contextlib.ExitStack() as stack:
            volumes = self._volumes(stack, parent)
            container, code = run_container(
                service,
                parent,
                replace(request, volumes=volumes),
                events.output,
                lambda c: events.running(c.short_id),
            )
        try:
            if code != 0:
                raise StepFailed(
                    f"The command '{' '.join(request.args)}' returned a non-zero code: {code}",
                    code,
                )
            snapshotter = self.snapshotter
            lower = lower_tree(snapshotter, parent.top)
            clean_mount_points(snapshotter.upper(container.snapshot), lower)
            layer, top = self._commit_layer(parent, container.snapshot)
        finally:
            service.discard(container)
            events.removed(container.short_id)
        return store_step(
            self.b.images,
            parent,
            config=parent.config,
            history=History(created=self.created(), created_by=text),
            layer=layer,
            top=top,
            batch=self.b.batch,
        )

    def _volumes(self, stack: contextlib.ExitStack, parent: StepImage) -> tuple[str, ...]:
        """Docker's RUN has the image's VOLUMEs mounted: each an anonymous volume holding a copy
        of what the image has there. So a RUN's writes below a VOLUME are not in its layer,
        and a VOLUME the image lacks appears in the layer as an empty 0755 directory (the mount
        point). The copies live in temporary directories, gone after the step."""
        # Docker takes a relative VOLUME (`VOLUME ["/a", "/b"]` written without quotes gives
        # `[/a,`) as relative to the root.
        paths = [p if p.startswith("/") else "/" + p for p in parent.config.config.volumes]
        paths = [p for p in paths if ":" not in p and p.rstrip("/")]
        if not paths:
            return ()
        binds = []
        scratch = scratch_dir(self.b.root.path)
        rootfs = stack.enter_context(self.view(parent)) if parent.layers else None
        for path in paths:
            host = tempfile.mkdtemp(prefix=owned_prefix("volume"), dir=scratch)
            stack.callback(shutil.rmtree, host, ignore_errors=True)
            os.chmod(host, 0o755)  # a new volume's directory, as Docker makes it
            if rootfs is not None:
                _copy_volume(rootfs, path, host)
            binds.append(f"{host}:{path}")
        return tuple(binds)

    def unpacked(self, image: StepImage) -> StepImage:
        """``image`` with its layers extracted (a base image on first use, or again if a
        prune removed them before the build's lease held them)."""
        if not image.layers or image.image is None:
            return image
        if image.top is not None:
            try:
                self.snapshotter.stat(image.top)  # the layers below stay while it does
                return image
            except NotFound:
                pass
        from strata.image.unpack import unpack

        self.b.hold.layers(image.layers)
        self.b.batch.flush()  # unpack reads the image's manifest and config
        top = unpack(self.b.images, self.snapshotter, image.image)
        return replace(image, top=top)

    @contextlib.contextmanager
    def mounted_step(self, parent: StepImage) -> Iterator[tuple[str, Path]]:
        """A new active snapshot on ``parent``, mounted: (its key, where it is mounted)."""
        from strata.snapshot.mount import mount_all, unmount

        snapshotter = self.snapshotter
        key = owned_name("build")  # a killed build's is debris at once
        snapshotter.prepare(key, parent.top)
        target = scratch_dir(self.b.root.path) / key
        try:
            target.mkdir()
            mount_all(snapshotter.mounts(key), target)
            try:
                yield key, target
            finally:
                unmount(target, detach=True)
        except BaseException:
            with contextlib.suppress(Exception):
                snapshotter.remove(key)
            raise
        finally:
            with contextlib.suppress(OSError):
                target.rmdir()

    # -- WORKDIR ----------------------------------------------------------------------------

    def workdir(self, parent: StepImage, config: ImageConfig, text: str) -> StepImage:
        """WORKDIR: the config change and, as Docker's builder does, the directory made if
        the parent has none (then the step has a layer: the directory, 0755 root)."""
        from strata.builder.owner import ROOT
        from strata.builder.rootwriter import RootWriter

        path = config.config.working_dir
        history = History(created=self.created(), created_by=text)
        # Whether a directory exists depends only on the layers: a run of WORKDIRs on the same
        # layers (metadata steps between them) mounts the parent once, not once a step.
        memo = (tuple(la.diff_id for la in parent.layers), path)
        if parent.image is not None and parent.layers and memo not in self._dirs:
            with self.view(parent) as rootfs, RootWriter(rootfs, "WORKDIR") as reader:
                parts = reader.resolve(path)
                st = reader.lstat(parts)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    self._dirs.add(memo)
            if memo in self._dirs:
                return store_step(
                    self.b.images,
                    parent,
                    config=config,
                    history=history,
                    layer=None,
                    top=None,
                    batch=self.b.batch,
                )
        parent = self.unpacked(parent)
        with self.mounted_step(parent) as (key, target), RootWriter(target, "WORKDIR") as writer:
            fd = writer.open_dir(writer.resolve(path), create=ROOT)
            if fd is not None:
                os.close(fd)
        layer, top = self._commit_layer(parent, key)
        return store_step(
            self.b.images,
            parent,
            config=config,
            history=history,
            layer=layer,
            top=top,
            batch=self.b.batch,
        )

    def _commit_layer(self, parent: StepImage, key: str) -> tuple[ImageLayer | None, str | None]:
        """The layer of active snapshot ``key`` (on ``parent``), and its committed key.

        A step that changed nothing has no layer (None, None): Docker's image store records
        an empty diff as ``empty_layer`` with no entry in rootfs (``layer.IsEmpty``).
        """
        snapshotter = self.snapshotter
        try:
            layer = write_snapshot_layer(
                self.b.images,
                snapshotter,
                key,
                scratch_dir(self.b.root.path),
                self.options.epoch,
                self.b.hold,
            )
            if str(layer.diff_id) == EMPTY_TAR_DIFF_ID:
                snapshotter.remove(key)
                return None, None
            diff_ids = [str(la.diff_id) for la in (*parent.layers, layer)]
            # Leased before it is committed: no image names the layer until the step is stored.
            self.b.hold.add("snapshot", [layer_snapshot_key(diff_ids)])
            return layer, adopt_snapshot(snapshotter, key, diff_ids)
        except BaseException:
            with contextlib.suppress(Exception):
                snapshotter.remove(key)
            raise

    # -- COPY / ADD -------------------------------------------------------------------------

    def copy_plan(
        self,
        state: StageState,
        step: Copy | Add,
        stages: dict[str, StepImage],
        dirty: dict[str, int | None],
        current: StepImage,
    ) -> CopyStep:
        """Resolve and sum the sources of ``step`` (the key needs their content)."""
        from strata.builder.copy import plan_copy
        from strata.builder.owner import ROOT, Owner, parse_chmod, resolve_chown

        command = "ADD" if isinstance(step, Add) else "COPY"
        line = f"Dockerfile:{step.node.start_line}"
        if step.exclude or (isinstance(step, Copy) and step.parents):
            raise BuildError(f"{line}: {command} --exclude and --parents are not supported")
        sources: list[str | tuple[str, bytes]] = [state.expand(s) for s in step.sources]
        env = state.env()
        raw = ShellLex(state.lex.escape, raw_quotes=True, raw_escapes=True)
        for doc in step.heredocs:
            body = raw.process_word(doc.body, env) if doc.expand else doc.body
            sources.append((doc.name, body.encode()))
        dest = state.expand(step.dest)
        chmod = parse_chmod(state.expand(step.chmod)) if step.chmod else None
        result = CopyStep(None, "", "", "", {}, None)
        try:
            root: Any = self.context
            from_stage = step.from_stage if isinstance(step, Copy) else None
            if from_stage is not None:
                name = state.expand(from_stage)
                result.source_fresh = dirty.get(name.lower())
                root = self._source_root(result.stack, name, stages)
            # COPY --from without --chown keeps the owners it finds (Docker 20.10's rule).
            owner: Owner | None = None if from_stage is not None else ROOT
            if step.chown:
                spec = state.expand(step.chown)
                rootfs = None
                if not all(part.isdigit() for part in spec.split(":")):
                    rootfs = result.stack.enter_context(self.view(current))
                owner = resolve_chown(rootfs, spec)
            plan = plan_copy(
                sources,
                dest,
                root=root,
                command=command,
                workdir=state.config.config.working_dir or "/",
                owner=owner,
                chmod=chmod,
                hashes=self.hashes,
                tempdir=scratch_dir(self.b.root.path),
            )
            result.stack.callback(plan.close)
        except BaseException:
            result.close()
            raise
        # Docker writes no space between the --chown flag and the sources' name.
        chown = f"--chown={state.expand(step.chown)}" if step.chown else ""
        head = " ".join((*state.shell, f"#(nop) {command} {chown}"))
        text = f"{head}{plan.description} in {dest} "
        result.root = root
        result.history = (head, f" in {dest} ")
        flags = f" chmod={step.chmod}" if step.chmod else ""
        result.plan = plan
        result.text = text
        # The sources are in the key by their digest: the text keeps only what else matters,
        # so that a change of content is explained by file, not as an edited instruction.
        result.key_text = text.replace(plan.description, "<sources>") + flags
        result.digest = str(plan.sources.digest)
        result.table = {"digest": result.digest, "files": plan.sources.table}
        return result

    def _source_root(
        self, stack: contextlib.ExitStack, name: str, stages: dict[str, StepImage]
    ) -> Path:
        """The rootfs of a ``--from`` stage (by name or index) or image, mounted read-only."""
        image = stages.get(name.lower())
        if image is None:
            missing = BuildError(f"COPY --from={name}: no stage or image of that name")
            try:
                found = self.b.images.get(name)
            except StrataError:
                raise missing from None
            held = self.b.hold.image(self.b.images, found)
            if held is None:  # removed between the lookup and the lease
                raise missing
            image = StepImage(found, self.b.images.config(found), held, None)
        return stack.enter_context(self.view(image))

    @contextlib.contextmanager
    def view(self, image: StepImage) -> Iterator[Path]:
        """``image``'s filesystem mounted read-only for as long as the block runs."""
        from strata.snapshot.mount import mount_all, unmount

        image = self.unpacked(image)
        snapshotter = self.snapshotter
        key = owned_name("build-view")
        mounts = snapshotter.view(key, image.top)
        target = scratch_dir(self.b.root.path) / key
        try:
            target.mkdir()
            mount_all(mounts, target)
            try:
                yield target
            finally:
                unmount(target, detach=True)
        finally:
            with contextlib.suppress(Exception):
                snapshotter.remove(key)
            with contextlib.suppress(OSError):
                target.rmdir()

    def copy(self, parent: StepImage, step: CopyStep) -> StepImage:
        """Write the planned files into a snapshot on ``parent``; it becomes the layer."""
        from strata.builder.copy import apply_copy

        parent = self.unpacked(parent)
        with self.mounted_step(parent) as (key, target):
            apply_copy(step.plan, target)
        layer, top = self._commit_layer(parent, key)
        return store_step(
            self.b.images,
            parent,
            config=parent.config,
            history=History(created=self.created(), created_by=step.history_text()),
            layer=layer,
            top=top,
            batch=self.b.batch,
        )


EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
"""The digest of a tar with no entry (two zero blocks): Docker's ``DigestSHA256EmptyTar``."""


def _copy_volume(rootfs: Path, path: str, host: str) -> None:
    """What the image holds at ``path`` (resolved inside ``rootfs``) copied into ``host``."""
    from strata.runtime.rootfs import resolve_components

    try:
        source = rootfs.joinpath(*resolve_components(rootfs, path))
    except StrataError:
        return
    if not source.is_dir() or source.is_symlink():
        return
    proc = subprocess.run(
        ["cp", "-a", "--", f"{source}/.", host], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BuildError(f"VOLUME {path}: cannot copy the image's content: {proc.stderr.strip()}")


def _is_marker(command: str, name: str) -> bool:
    """Whether ``command`` is nothing but the here-document marker of ``name``."""
    text = command.strip().removeprefix("<<").removeprefix("-").strip()
    return text in (name, f'"{name}"', f"'{name}'")

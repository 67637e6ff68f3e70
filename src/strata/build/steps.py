"""The steps that touch files: RUN (through the runtime) and COPY/ADD (straight into a snapshot).

Both end the same way: the step's snapshot holds exactly what it changed, its canonical tar
becomes the layer blob, and the snapshot itself is committed as that layer's snapshot.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strata.build.dockerfile.commands import Run
from strata.build.events import BuildOptions
from strata.build.images import (
    StepImage,
    adopt_snapshot,
    scratch_dir,
    store_step,
    write_snapshot_layer,
)
from strata.build.run import RunRequest, clean_mount_points, run_container
from strata.build.stage import StageState
from strata.errors import StepFailed
from strata.oci.config import History

if TYPE_CHECKING:
    from strata.build.executor import Builder


class StepRunner:
    """Runs the file-changing steps of one build."""

    def __init__(self, builder: Builder, options: BuildOptions, context: Any) -> None:
        self.b = builder
        self.options = options
        self.context = context

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
        if step.shell_form:
            script = step.command[0]
            for doc in step.heredocs:  # the shell itself reads here-documents
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
            network="host" if network == "default" else network,
            runtime=self.options.runtime,
        )
        return request, text, build_args

    def run(self, parent: StepImage, request: RunRequest, text: str) -> StepImage:
        parent = self.unpacked(parent)
        events = self.b.events
        service = self.b.service
        container, code = run_container(
            service, parent, request, events.output, lambda c: events.running(c.short_id)
        )
        try:
            if code != 0:
                raise StepFailed(
                    f"The command '{' '.join(request.args)}' returned a non-zero code: {code}",
                    code,
                )
            snapshotter = self.snapshotter
            lower = None
            if snapshotter.diff_kind != "overlay" and parent.top is not None:
                lower = snapshotter.upper(parent.top)
            clean_mount_points(snapshotter.upper(container.snapshot), lower)
            layer = write_snapshot_layer(
                self.b.images,
                snapshotter,
                container.snapshot,
                parent.top,
                scratch_dir(self.b.root.path),
                self.options.epoch,
            )
            diff_ids = [str(la.diff_id) for la in (*parent.layers, layer)]
            top = adopt_snapshot(snapshotter, container.snapshot, diff_ids)
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
        )

    def unpacked(self, image: StepImage) -> StepImage:
        """``image`` with its layers extracted (a base image on first use)."""
        if image.top is not None or not image.layers or image.image is None:
            return image
        from dataclasses import replace

        from strata.image.unpack import unpack

        top = unpack(self.b.images, self.snapshotter, image.image)
        return replace(image, top=top)

    @contextlib.contextmanager
    def mounted_step(self, parent: StepImage) -> Iterator[tuple[str, Path]]:
        """A new active snapshot on ``parent``, mounted: (its key, where it is mounted)."""
        from strata.snapshot.mount import mount_all, unmount

        snapshotter = self.snapshotter
        key = f"build-{uuid.uuid4().hex}"
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

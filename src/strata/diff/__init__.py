"""The seam between snapshots and layers, as containerd's ``diff.Applier`` and ``diff.Comparer``.

- `strata.diff.apply`: the one unpacker. A layer stream (any compression) applied onto a new
  snapshot on a parent, its diff ID checked, committed under its key; nothing is left behind if
  it fails, and a race with another process committing the same key is lost gracefully.
- `strata.diff.compare`: the one differ. What an active snapshot changed against its parent,
  written as a canonical layer tar (the same changes give the same diff ID).
- `strata.diff.chain`: chain IDs, and the snapshot keys they give a stack of layers.

Both sides choose the whiteout form (an overlay upper dir, or a full tree to compare with its
parent) from the snapshotter itself: no package outside `strata.snapshot` and this one asks
``Snapshotter.diff_kind``. This package knows nothing of images, registries or containers.

Nothing is imported here: `strata.diff.chain` is on the path of a warm ``strata run``, which
must not load the layer code.
"""

"""Layers as tar changesets: the compression around them, and their canonical tar form.

A layer is a tar of additions, modifications and deletions (OCI whiteouts ``.wh.NAME`` and
``.wh..wh..opq`` travel as ordinary members). This package owns:

- `compression`: detecting and streaming gzip (isal), zstd (zstandard), bzip2 and xz, with a
  bound on decompressed bytes so a bomb is stopped early;
- `generate`: a deterministic tar of a directory tree (same tree, same diff ID);
- `normalize`: any tar stream re-emitted in that same canonical form, with hostile member names
  rejected;
- `apply`: extracting a layer onto a directory safely (no entry reaches outside it), whiteouts
  applied as deletions or as overlay whiteouts; `resolve`: its names resolved as containerd
  and a chroot resolve them (``..`` stops at the root, symlinked parents followed inside it);
- `diff`: an overlay upper dir, or a tree against its parent, back into a canonical layer;
- `whiteout` / `fsops`: the whiteout forms and the symlink-safe file operations under `apply`;
- `tarreader` / `tarwriter`: the streaming tar reader and the canonical header encoder all of
  them use.

Nothing here knows about images, snapshots or the content store.
"""

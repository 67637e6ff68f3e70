"""Copying a directory source's entries under a destination directory in the rootfs.

Entries arrive in walk order (a directory before what is in it). The chain of open directory
fds follows the walk, so each entry is created relative to its parent's fd with one call; a
directory's owner, mode and time are set when the walk leaves it (after its contents, which
would otherwise bump its time). Hardlinked files of one source stay hardlinked. Without an
owner (``COPY --from`` without ``--chown``) each entry keeps its source's owner.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from strata.builder.owner import ROOT, Owner, chowned_mode
from strata.builder.rootwriter import RootWriter
from strata.builder.sources import Member


@dataclass(slots=True)
class _Dir:
    rel: str
    fd: int
    parts: list[str]
    # (mode, mtime_ns, owner) to set on leaving; None leaves the directory as it was.
    meta: tuple[int, int | None, Owner] | None


def _under(rel: str, top: str) -> bool:
    return not top or rel == top or rel.startswith(top + "/")


def _leave(writer: RootWriter, chain: list[_Dir], rel: str | None) -> None:
    """Close directories of the chain that ``rel`` is not in (all but the first if None)."""
    while len(chain) > 1 and (rel is None or not _under(rel, chain[-1].rel)):
        done = chain.pop()
        try:
            if done.meta is not None:
                writer.finish_dir(done.fd, done.meta[0], done.meta[2], done.meta[1])
        finally:
            os.close(done.fd)


def copy_tree(
    writer: RootWriter,
    dest_fd: int,
    dest_parts: list[str],
    members: tuple[Member, ...],
    owner: Owner | None,
    chmod: int | None,
) -> None:
    """Write ``members`` below the open directory ``dest_fd`` (at ``dest_parts``)."""
    chain = [_Dir("", dest_fd, dest_parts, None)]
    links: dict[tuple[int, int], list[str]] = {}
    try:
        for m in members:
            parent_rel, _, name = m.rel.rpartition("/")
            _leave(writer, chain, parent_rel)
            top = chain[-1]
            if top.rel != parent_rel:
                # A parent the walk did not list: make it as the daemon's untar would.
                have = len(top.rel.split("/")) if top.rel else 0
                for part in parent_rel.split("/")[have:]:
                    fd, parts, own = writer.enter_dir(top.fd, top.parts, part)
                    rel = f"{top.rel}/{part}" if top.rel else part
                    dir_mode = chmod if chmod is not None else 0o755
                    meta: tuple[int, int | None, Owner] = (dir_mode, None, owner or ROOT)
                    top = _Dir(rel, fd, parts, meta if own else None)
                    chain.append(top)
            st = m.st
            mode = st.st_mode
            entry_owner = owner or Owner(st.st_uid, st.st_gid)
            if stat.S_ISDIR(mode):
                fd, parts, own = writer.enter_dir(top.fd, top.parts, name)
                own_mode = 0o755 if m.implicit else stat.S_IMODE(mode)
                dir_mode = chmod if chmod is not None else own_mode
                mtime = None if m.implicit else st.st_mtime_ns
                meta = (dir_mode, mtime, owner or (ROOT if m.implicit else entry_owner))
                chain.append(_Dir(m.rel, fd, parts, meta if own else None))
            elif stat.S_ISREG(mode):
                file_mode = chmod if chmod is not None else stat.S_IMODE(mode)
                if owner is not None:
                    file_mode = chowned_mode(file_mode)
                if st.st_nlink > 1:
                    inode = (st.st_dev, st.st_ino)
                    first = links.get(inode)
                    if first is not None:
                        writer.hardlink(top.fd, name, first)
                        continue
                    links[inode] = [*top.parts, name]
                writer.put_file(top.fd, name, m.host, file_mode, entry_owner, st.st_mtime_ns)
            elif stat.S_ISLNK(mode):
                writer.put_symlink(top.fd, name, m.link, entry_owner, st.st_mtime_ns)
            else:
                writer.put_node(top.fd, name, mode, st.st_rdev, entry_owner, st.st_mtime_ns)
        _leave(writer, chain, None)
    finally:
        for left in chain[1:]:
            os.close(left.fd)

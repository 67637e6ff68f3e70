"""Writing files into an image's root filesystem from the host, never outside it.

The rootfs is untrusted (``/app`` may be a symlink to ``/etc`` or ``../../..``). A destination
path is resolved with symlinks interpreted as if the rootfs were ``/`` (`resolve_components`,
as ``securejoin`` does), then opened one component at a time with ``O_NOFOLLOW``, relative to
directory fds; files are created with ``O_EXCL|O_NOFOLLOW``, so nothing is ever written through
a link. An existing entry in the way of a file or link is removed first (a whole tree if it is
a directory), as Docker's untar does; an existing symlink where a directory is needed is
followed when it leads to a directory inside the rootfs (merged-/usr images keep ``/lib``),
else replaced.

File data moves with ``copy_file_range`` (in-kernel, reflinks where the filesystem has them),
falling back to ``sendfile`` and then to read/write.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

from strata.builder.owner import Owner
from strata.errors import BuildError, UnsafePath
from strata.layer import fsops
from strata.runtime.rootfs import resolve_components

DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
SRC_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_BIG: Final = 1 << 30
_CHUNK: Final = 1 << 20
_NO_FAST_COPY: Final = frozenset(
    {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM}
)

_fast_copy = {"copy_file_range": True, "sendfile": True}


def copy_data(src_fd: int, dst_fd: int) -> int:
    """Copy ``src_fd`` from its offset to its end onto ``dst_fd``; returns the bytes copied."""
    total = 0
    if _fast_copy["copy_file_range"]:
        try:
            while n := os.copy_file_range(src_fd, dst_fd, _BIG):
                total += n
            return total
        except OSError as e:
            if e.errno not in _NO_FAST_COPY or total:
                raise
            _fast_copy["copy_file_range"] = False
    if _fast_copy["sendfile"]:
        try:
            while n := os.sendfile(dst_fd, src_fd, None, _BIG):
                total += n
            return total
        except OSError as e:
            if e.errno not in _NO_FAST_COPY or total:
                raise
            _fast_copy["sendfile"] = False
    while chunk := os.read(src_fd, _CHUNK):
        view = memoryview(chunk)
        while view:
            written = os.write(dst_fd, view)
            view = view[written:]
        total += len(chunk)
    return total


class RootWriter:
    """Creates directories, files, links and nodes inside ``rootfs`` for one step.

    Owners are set only when running as root (an unprivileged writer leaves its own).
    Close it (or use ``with``) to release the root fd.
    """

    def __init__(self, rootfs: Path, command: str) -> None:
        self.rootfs = rootfs
        self.command = command
        self.chown = os.geteuid() == 0
        self.files = 0
        self.bytes = 0
        try:
            self.root_fd = os.open(rootfs, DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as e:
            raise BuildError(f"{command} failed: cannot open {rootfs}: {e.strerror}") from None

    def __enter__(self) -> RootWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def fail(self, where: str, e: OSError) -> BuildError:
        return BuildError(f"{self.command} failed: {where}: {e.strerror or e}")

    def resolve(self, path: str) -> list[str]:
        """The components of image path ``path`` with every symlink followed in the rootfs."""
        try:
            return resolve_components(self.rootfs, path)
        except UnsafePath as e:
            raise BuildError(f"{self.command} failed: {e}") from None

    def lstat(self, parts: list[str]) -> os.stat_result | None:
        """The lstat of ``parts`` (already resolved), None if it is missing."""
        if not parts:
            return os.fstat(self.root_fd)
        fd = self.open_dir(parts[:-1], create=None)
        if fd is None:
            return None
        try:
            return os.lstat(parts[-1], dir_fd=fd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(fd)

    def open_dir(
        self,
        parts: list[str],
        *,
        create: Owner | None,
        mode: int = 0o755,
        created: list[bool] | None = None,
    ) -> int | None:
        """An fd of directory ``parts`` (resolved components), opened without following links.

        Missing directories are made (``mode``, owned by ``create``) unless ``create`` is None,
        when None is returned instead. A non-directory in the way raises `BuildError`.
        ``created`` gets True appended if the last component was made here.
        """
        fd = os.dup(self.root_fd)
        made = False
        try:
            for i, name in enumerate(parts):
                made = False
                try:
                    nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if create is None:
                        os.close(fd)
                        return None
                    self._mkdir(fd, name, mode, create)
                    made = True
                    nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    if create is None:
                        os.close(fd)
                        return None
                    where = "/" + "/".join(parts[: i + 1])
                    raise BuildError(f"{self.command} failed: {where}: not a directory") from None
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        if created is not None:
            created.append(made)
        return fd

    def _mkdir(self, parent_fd: int, name: str, mode: int, owner: Owner) -> None:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        if self.chown:
            os.chown(name, owner.uid, owner.gid, dir_fd=parent_fd, follow_symlinks=False)
        os.chmod(name, mode, dir_fd=parent_fd)

    def enter_dir(
        self, parent_fd: int, parent: list[str], name: str
    ) -> tuple[int, list[str], bool]:
        """Open (making it if needed) directory ``name`` in ``parent_fd`` for copying into.

        Returns its fd, its resolved components and whether it is a directory of its own
        (False when reached through an existing symlink: its metadata is then left alone).
        """
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent_fd), [*parent, name], True
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            st = os.lstat(name, dir_fd=parent_fd)
            if stat.S_ISLNK(st.st_mode):
                parts = self.resolve("/" + "/".join([*parent, name]))
                fd = self.open_dir(parts, create=None)
                if fd is not None:
                    return fd, parts, False
            fsops.remove(parent_fd, os.fsencode(name))
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd), [*parent, name], True

    def finish_dir(self, fd: int, mode: int, owner: Owner, mtime_ns: int | None) -> None:
        """Set a copied directory's owner, mode and (after its contents) time."""
        if self.chown:
            os.fchown(fd, owner.uid, owner.gid)
        os.fchmod(fd, mode)
        if mtime_ns is not None:
            os.utime(fd, ns=(mtime_ns, mtime_ns))

    def create(self, parent_fd: int, name: str) -> int:
        """A new, empty file ``name`` in ``parent_fd``, replacing whatever was there."""
        try:
            return os.open(name, FILE_FLAGS, 0o600, dir_fd=parent_fd)
        except FileExistsError:
            fsops.remove(parent_fd, os.fsencode(name))
            return os.open(name, FILE_FLAGS, 0o600, dir_fd=parent_fd)

    def finish_file(self, fd: int, mode: int, owner: Owner, mtime_ns: int) -> None:
        if self.chown:
            os.fchown(fd, owner.uid, owner.gid)
        os.fchmod(fd, mode)  # after chown, which clears set-id bits
        os.utime(fd, ns=(mtime_ns, mtime_ns))

    def put_file(
        self, parent_fd: int, name: str, src: str, mode: int, owner: Owner, mtime_ns: int
    ) -> None:
        """Copy the regular file at host path ``src`` to ``name`` in ``parent_fd``."""
        try:
            sfd = os.open(src, SRC_FLAGS)
        except OSError as e:
            raise self.fail(src, e) from None
        try:
            if not stat.S_ISREG(os.fstat(sfd).st_mode):
                raise BuildError(f"{self.command} failed: {src}: not a regular file any more")
            dfd = self.create(parent_fd, name)
            try:
                self.bytes += copy_data(sfd, dfd)
                self.finish_file(dfd, mode, owner, mtime_ns)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
        self.files += 1

    def put_bytes(
        self, parent_fd: int, name: str, data: bytes, mode: int, owner: Owner, mtime_ns: int
    ) -> None:
        """Write ``data`` as file ``name`` in ``parent_fd``."""
        dfd = self.create(parent_fd, name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(dfd, view) :]
            self.finish_file(dfd, mode, owner, mtime_ns)
        finally:
            os.close(dfd)
        self.files += 1
        self.bytes += len(data)

    def put_symlink(
        self, parent_fd: int, name: str, target: str, owner: Owner, mtime_ns: int
    ) -> None:
        try:
            os.symlink(target, name, dir_fd=parent_fd)
        except FileExistsError:
            fsops.remove(parent_fd, os.fsencode(name))
            os.symlink(target, name, dir_fd=parent_fd)
        if self.chown:
            os.chown(name, owner.uid, owner.gid, dir_fd=parent_fd, follow_symlinks=False)
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)
        self.files += 1

    def put_node(
        self, parent_fd: int, name: str, st_mode: int, rdev: int, owner: Owner, mtime_ns: int
    ) -> bool:
        """A fifo or device node (devices only as root); False if it was skipped."""
        kind = stat.S_IFMT(st_mode)
        if kind != stat.S_IFIFO and not self.chown:
            return False
        fsops.remove(parent_fd, os.fsencode(name))
        os.mknod(name, kind | 0o600, rdev, dir_fd=parent_fd)
        if self.chown:
            os.chown(name, owner.uid, owner.gid, dir_fd=parent_fd, follow_symlinks=False)
        fsops.chmod(parent_fd, os.fsencode(name), stat.S_IMODE(st_mode))
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)
        self.files += 1
        return True

    def hardlink(self, parent_fd: int, name: str, first: list[str]) -> None:
        """Link ``name`` in ``parent_fd`` to the file at resolved components ``first``."""
        fsops.remove(parent_fd, os.fsencode(name))
        os.link(
            "/".join(first),
            name,
            src_dir_fd=self.root_fd,
            dst_dir_fd=parent_fd,
            follow_symlinks=False,
        )
        self.files += 1

"""A site's files, handled as if hostile: the root is a wall, only regular files are read.

Both the loader (:mod:`recommender.corpus`) and the exporter
(:mod:`recommender.export`) go through here, so that they agree on what may
be read and written:

* a path is *inside* the site when its real path (symlinks resolved) is under
  the site root's real path; nothing outside is ever read or written;
* only regular files are opened (never a FIFO, device, socket or folder: their
  type is checked before opening, and they are opened non-blocking), and only
  up to a size limit;
* a run that writes holds a lock file in the site (:class:`SiteLock`), and
  removes the temporary files a killed run left (:func:`remove_temporary_files`).

Everything refused raises :class:`~recommender.errors.UnsafeFileError` with a
sentence saying why.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import socket
import stat
from pathlib import Path
from typing import Any

from .errors import LockedError, UnsafeFileError

__all__ = [
    "DEFAULT_MAX_PAGE_BYTES",
    "PageWriter",
    "SiteLock",
    "is_inside",
    "read_regular_file",
    "remove_temporary_files",
    "temporary_name",
    "writable_target",
    "write_atomic",
]

logger = logging.getLogger(__name__)

#: Largest page read by default (bytes); a bigger file is reported, not read.
DEFAULT_MAX_PAGE_BYTES = 1_000_000
#: The name :func:`write_atomic` and :class:`PageWriter` give their temporary files.
TEMPORARY_NAME = re.compile(r"\..+\.md\.[a-z0-9_]{8}\.tmp")
#: The folder at a site's root where :class:`PageWriter` writes new page texts.
SCRATCH_FOLDER = ".recommend-writing"


def temporary_name(name: str) -> re.Pattern[str]:
    """The names :func:`write_atomic` gives the temporary files it writes beside ``name``."""
    return re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def is_inside(root_real: str, path: str | os.PathLike[str]) -> bool:
    """Is ``path``, with every symlink resolved, the real root or under it?"""
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _checked_stat(path: str | os.PathLike[str], root_real: str) -> os.stat_result:
    """The status of the file ``path`` leads to, refusing what lies outside or is no file."""
    status = os.lstat(path)
    if stat.S_ISLNK(status.st_mode):
        if not is_inside(root_real, path):
            raise UnsafeFileError(
                f"a symlink to {os.path.realpath(path)}, outside the site; not followed"
            )
        status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise UnsafeFileError(f"{_kind(status.st_mode)}, not a regular file; not opened")
    return status


def read_regular_file(
    path: str | os.PathLike[str], root_real: str, max_bytes: int = DEFAULT_MAX_PAGE_BYTES
) -> bytes:
    """The bytes of a regular file inside the root, of at most ``max_bytes``.

    The file's type is checked before it is opened (a FIFO would block, a
    device never end), it is opened non-blocking, checked again, and read no
    further than the limit.

    Raises
    ------
    UnsafeFileError
        For a symlink leading outside ``root_real``, anything but a regular
        file, or a file over ``max_bytes``.
    OSError
        When the file cannot be read.
    """
    status = _checked_stat(path, root_real)
    if status.st_size > max_bytes:
        raise UnsafeFileError(_too_big(status.st_size, max_bytes))
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "rb") as stream:
        opened = os.fstat(stream.fileno())
        if not stat.S_ISREG(opened.st_mode):  # it changed between the check and the open
            raise UnsafeFileError(f"{_kind(opened.st_mode)}, not a regular file; not read")
        data = _read_at_most(stream, max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFileError(_too_big(len(data), max_bytes))
    return data


def _read_at_most(stream: Any, limit: int, chunk: int = 1 << 20) -> bytes:
    """Up to ``limit`` bytes of a stream, a chunk at a time: a limit of a terabyte (or
    2**63) reserves no memory for what the file does not hold."""
    parts, size = [], 0
    while size < limit:
        wanted = min(chunk, limit - size)
        part = stream.read(wanted)
        parts.append(part)
        size += len(part)
        if len(part) < wanted:  # the end of the file: no read more than before
            break
    return b"".join(parts)


def _too_big(size: int, max_bytes: int) -> str:
    return f"{size:,} bytes or more, over the limit of {max_bytes:,} bytes (max_page_bytes)"


def writable_target(path: str | os.PathLike[str], root_real: str) -> Path:
    """The real file a page's new text may replace: inside the root, regular, not read-only.

    Raises
    ------
    UnsafeFileError
        For a page (or a folder on its way) leading outside the root, anything
        but a regular file, or a read-only page (no write permission bit).
    """
    status = _checked_stat(path, root_real)
    real = os.path.realpath(path)
    if not is_inside(root_real, real):
        raise UnsafeFileError(f"its real path {real} is outside the site; not written")
    if not status.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(
        real, os.W_OK
    ):
        raise UnsafeFileError("the page is read-only; not replaced")
    return Path(real)


class PageWriter:
    """Replaces pages of one site atomically, through a descriptor of each page's real folder.

    The folder is resolved and checked to be inside the root once, then held
    open: every later step (the page's status, the temporary file, the
    replacement) is made relative to that descriptor, so that a folder on
    the path swapped for a symlink meanwhile cannot lead a write outside.
    Pages come folder by folder (path order); one folder is held at a time.
    A page that is itself a symlink (to another page of the site) is written
    through, at its real path.  Use it as a context manager.
    """

    def __init__(self, root_real: str, scratch: _Scratch | None = None):
        self.root_real = root_real
        self._folder: str | None = None
        self._descriptor: int | None = None
        self._owns_scratch = scratch is None
        self._scratch = _Scratch(root_real) if scratch is None else scratch
        self._via_scratch = False  # may the held folder's pages be written from the scratch?

    def replace(self, path: str | os.PathLike[str], data: bytes) -> tuple[int, int]:
        """Replace the page at ``path`` with ``data``, keeping its mode; return the new
        file's size and modification time (ns) as it was written.

        Raises
        ------
        UnsafeFileError
            As :func:`writable_target`: outside the root, not a regular file, read-only.
        OSError
            When the file cannot be written.
        """
        folder, name = os.path.split(os.fspath(path))
        descriptor = self._open(folder)
        status = os.lstat(name, dir_fd=descriptor)
        if stat.S_ISLNK(status.st_mode):  # a page linked to another: checked by its real path
            with PageWriter(self.root_real, self._scratch) as writer:
                return writer.replace(writable_target(path, self.root_real), data)
        if not stat.S_ISREG(status.st_mode):
            raise UnsafeFileError(f"{_kind(status.st_mode)}, not a regular file; not written")
        writable = status.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        if not writable or not os.access(name, os.W_OK, dir_fd=descriptor):
            raise UnsafeFileError("the page is read-only; not replaced")
        mode = stat.S_IMODE(status.st_mode)
        if self._via_scratch:
            try:
                return _replace_in(descriptor, name, data, mode, self._scratch.descriptor())
            except OSError as exc:  # another mount under the site, say: the folder's pages
                self._via_scratch = False  # are written beside themselves from now on
                logger.debug("%s: written beside itself (%s)", path, exc)
        return _replace_in(descriptor, name, data, mode)

    def _open(self, folder: str) -> int:
        if folder == self._folder and self._descriptor is not None:
            return self._descriptor
        self._close_folder()
        real = os.path.realpath(folder)
        if not is_inside(self.root_real, real):
            raise UnsafeFileError(f"its real folder {real} is outside the site; not written")
        self._descriptor = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._folder = folder
        self._via_scratch = self._scratch.serves(self._descriptor)
        return self._descriptor

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close_folder()
        if self._owns_scratch:
            self._scratch.close()

    def _close_folder(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
        self._folder = self._descriptor = None


class _Scratch:
    """The folder :data:`SCRATCH_FOLDER` at a site's root, where new page texts are written
    before they are renamed over their pages; made when first asked for, and removed
    when closed if it was made then (another writer may be using one found there).

    It is used only when it is a real folder of this user's that no one else may
    write to (a link or another's folder planted there is left alone), and only
    for the pages of a folder whose new files would get what they get there:
    the same file system, group, default ACL and security label (else they are
    written beside themselves, as a setgid folder's pages must be to keep its
    group).
    """

    def __init__(self, root_real: str):
        self.path = os.path.join(root_real, SCRATCH_FOLDER)
        self._descriptor: int | None = None
        self._created = False
        self._tried = False
        self._inherited: tuple | None = None

    def descriptor(self) -> int | None:
        """The open folder's descriptor; None where it cannot serve."""
        if not self._tried:
            self._tried = True
            self._descriptor, self._created = _own_folder(self.path)
            if self._descriptor is not None:
                self._inherited = _inherited(self._descriptor)
        return self._descriptor

    def serves(self, folder: int) -> bool:
        """May the pages of ``folder`` (a descriptor) be written from here?"""
        return self.descriptor() is not None and _inherited(folder) == self._inherited

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
            if self._created:
                with contextlib.suppress(OSError):  # not empty: another writer's file is there
                    os.rmdir(self.path)


def _own_folder(path: str) -> tuple[int | None, bool]:
    """A descriptor of the folder ``path``, made if missing (and whether it was made); None
    unless it is a folder of this user's, not a link, that no one else may write to."""
    created = True
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:  # left by a killed run, or another writer's: checked below
        created = False
    except OSError:
        return None, False
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None, False
    if not _is_private(os.fstat(descriptor)):
        os.close(descriptor)
        return None, False
    return descriptor, created


def _is_private(status: os.stat_result) -> bool:
    """A folder of this user's that no one else may write to?"""
    return status.st_uid == os.geteuid() and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


#: Extended attributes a new file takes from its folder.
_INHERITED_ATTRIBUTES = ("system.posix_acl_default", "security.selinux")


def _inherited(folder: int) -> tuple:
    """What a new file takes from the folder (a descriptor): its file system, its group
    (None: the process's own), its default ACL and security label."""
    status = os.fstat(folder)
    group = status.st_gid if status.st_mode & stat.S_ISGID else None
    return (status.st_dev, group, *(_attribute(folder, name) for name in _INHERITED_ATTRIBUTES))


def _attribute(folder: int, name: str) -> bytes | None:
    try:
        return os.getxattr(folder, name)
    except (OSError, AttributeError):  # none, not supported, or no xattrs on this system
        return None


def write_atomic(
    path: str | os.PathLike[str], data: bytes, *, follow_symlinks: bool = True
) -> None:
    """Replace a file's content atomically (or create it), keeping its mode.

    The data goes to a temporary file in the same folder, which then replaces
    the file (``os.replace``), so a reader or a killed process sees either
    the old content or the new, never a part.  A symlink is followed (the
    file it points to is replaced) unless ``follow_symlinks`` is False: then
    the link itself is replaced, as the state's files are (a link planted in
    a site's state folder would otherwise have any file replaced, even
    ``/dev/zero``).  A new file gets the modes the umask allows.  For any
    file (the state, a links table); pages go through :class:`PageWriter`,
    which keeps them inside the site.
    """
    target = os.path.realpath(path) if follow_symlinks else os.fspath(path)
    try:
        status = os.lstat(target)
    except FileNotFoundError:
        status = None
    keep = status is not None and stat.S_ISREG(status.st_mode)
    mode = stat.S_IMODE(status.st_mode) if keep else 0o666 & ~_umask()
    _replace_in(None, target, data, mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace_in(
    folder: int | None, path: str, data: bytes, mode: int, scratch: int | None = None
) -> tuple[int, int]:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``;
    return the file's size and modification time (ns) as written (a rename keeps them).

    ``path`` is a name in the open ``folder`` (a descriptor), or with no
    folder, a path.  With a ``scratch`` folder (a descriptor), the temporary
    file is written there instead.  Whatever interrupts it (Ctrl-C, the
    SIGTERM the command line turns into one), even the moment the temporary
    file is created, the temporary file is removed.
    """
    head, name = os.path.split(path)
    if scratch is not None:
        if folder is None:
            raise ValueError("a scratch folder serves only pages named in an open folder")
        head = ""
    temporary_folder = folder if scratch is None else scratch
    in_folder = {} if temporary_folder is None else {"dir_fd": temporary_folder}
    temporary = descriptor = None
    try:
        for _ in range(100):
            # named before it is created: an interrupt as it is created still finds it
            temporary = os.path.join(head, f".{name}.{secrets.token_hex(4)}.tmp")  # TEMPORARY_NAME
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            try:
                descriptor = os.open(temporary, flags, 0o600, **in_folder)
                break
            except FileExistsError:
                temporary = None  # another's file: never removed here
        else:  # pragma: no cover - 100 random names all taken
            raise FileExistsError(f"no free temporary name beside {name}")
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fchmod(descriptor, mode)
        written = os.fstat(descriptor)
        os.close(descriptor)
        descriptor = None
        both = {} if folder is None else {"src_dir_fd": temporary_folder, "dst_dir_fd": folder}
        os.replace(temporary, path, **both)
        return written.st_size, written.st_mtime_ns
    except BaseException:
        if descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        if temporary is not None:  # gone already once it replaced the file
            with contextlib.suppress(OSError):
                os.unlink(temporary, **in_folder)
        raise


def remove_temporary_files(root: str | os.PathLike[str]) -> int:
    """Remove the temporary files (``.NAME.md.XXXXXXXX.tmp``) a killed run left; return how many.

    Only regular files inside the root are removed; symlinks and dot-folders
    are not followed, but for the scratch folder (:data:`SCRATCH_FOLDER`),
    which is removed once empty if it is this user's and no one else may
    write to it (as a writer of ours makes it).
    """
    removed = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        removed += _remove_temporary(folder, files)
    scratch = os.path.join(root, SCRATCH_FOLDER)
    with contextlib.suppress(OSError):  # none there, or a link: never followed
        folder = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            ours = _is_private(os.fstat(folder))
            if ours:
                removed += _remove_temporary(scratch, os.listdir(folder), folder)
        finally:
            os.close(folder)
        if ours:  # another's folder is left, even empty
            os.rmdir(scratch)
    return removed


def _remove_temporary(folder: str, names: list[str], descriptor: int | None = None) -> int:
    """Remove the temporary files among ``names`` in ``folder`` (opened as ``descriptor``)."""
    removed = 0
    for name in names:
        path = name if descriptor is not None else os.path.join(folder, name)
        with contextlib.suppress(FileNotFoundError):
            if TEMPORARY_NAME.fullmatch(name) and stat.S_ISREG(
                os.lstat(path, dir_fd=descriptor).st_mode
            ):
                os.unlink(path, dir_fd=descriptor)
                removed += 1
                logger.info("removed %s, left by a killed run", os.path.join(folder, name))
    return removed


class SiteLock:
    """One writing run at a time: a lock file in the site holding the run's pid and host.

    The file is ``.recommend.lock`` at the site's root, whatever else the
    site holds (a lock that moved into the state folder once there was one
    let a run started while a site's first run made that folder take the
    other file, and both ran).  It is held with ``flock``, which the system
    releases when the process ends, however it ends: a lock left by a killed
    run is taken over (and logged).  A lock held by a live process raises
    :class:`~recommender.errors.LockedError` naming it.

    Examples
    --------
    ::

        with SiteLock("site"):
            ...  # write the pages
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.path = Path(root) / ".recommend.lock"
        self._descriptor: int | None = None
        self.stale: dict | None = None

    def __enter__(self) -> SiteLock:
        for _ in range(10):  # another run may remove the file between our open and flock
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
            try:
                descriptor = os.open(self.path, flags, 0o644)
            except OSError as exc:  # a symlink or a FIFO planted where the lock goes
                raise UnsafeFileError(f"{self.path}: cannot be the lock: {exc.strerror}") from None
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                os.close(descriptor)
                raise UnsafeFileError(f"{self.path}: cannot be the lock: not a regular file")
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(descriptor)
                os.close(descriptor)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise LockedError(_held_message(self.path, holder)) from None
                raise
            if _same_file(descriptor, self.path):
                self._take(descriptor)
                self._descriptor = descriptor
                return self
            os.close(descriptor)
        raise LockedError(f"{self.path}: cannot take the lock: it keeps changing")

    def _take(self, descriptor: int) -> None:
        holder = _read_holder(descriptor)
        if holder.get("host", socket.gethostname()) != socket.gethostname():
            os.close(descriptor)
            raise LockedError(
                _held_message(self.path, holder) + " (or remove it if no run is going on there)"
            )
        if holder:
            self.stale = holder
            logger.warning(
                "took over the lock of a run that ended without releasing it (pid %s on %s)",
                holder.get("pid"),
                holder.get("host"),
            )
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, mine + b"\n", 0)

    def __exit__(self, *exc_info: object) -> None:
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self._descriptor)
            self._descriptor = None


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def _read_holder(descriptor: int) -> dict:
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _held_message(path: Path, holder: dict) -> str:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    return f"another run ({who}) holds the lock {path}; try again when it has finished"

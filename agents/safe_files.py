"""File access inside a workspace that never follows a symbolic link, at any step of a path.

The path policy (agents.gate.check_path) decides textually which paths an agent may name; these
functions then walk the path one component at a time from a descriptor of the workspace directory,
opening each folder with O_NOFOLLOW | O_DIRECTORY. A symbolic link swapped in between a check and
a write therefore makes the operation fail instead of leading it outside the workspace. Writes go
to a temporary file in the target folder and are renamed over the name (a rename replaces a link
rather than following it). Pure Python, no Django.

Errors are `WorkspaceFileError`, whose message names only the workspace-relative path.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
FILE_MODE = 0o644
DIR_MODE = 0o755


class WorkspaceFileError(Exception):
    """A file operation failed; `reason` is a short code (not_found, not_a_file, symlink, too_large, io)."""

    def __init__(self, path: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _error(path: str, exc: OSError) -> WorkspaceFileError:
    if exc.errno == errno.ENOENT:
        return WorkspaceFileError(path, "not_found", f"{path} does not exist.")
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return WorkspaceFileError(path, "symlink", f"{path} passes through a symbolic link, which is not followed.")
    if exc.errno == errno.ENOTDIR:
        return WorkspaceFileError(
            path, "not_a_folder", f"{path}: a part of the path is a file or a link, not a folder."
        )
    if exc.errno == errno.EISDIR:
        return WorkspaceFileError(path, "not_a_file", f"{path} is a folder, not a file.")
    if exc.errno == errno.EEXIST:
        return WorkspaceFileError(path, "exists", f"{path}: a file of that name is in the way of a folder.")
    return WorkspaceFileError(path, "io", f"{path}: {os.strerror(exc.errno or errno.EIO)}.")


@contextmanager
def _folder(root: str, path: str, parts: list[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of the folder `parts` inside `root`, reached without following links."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_link(part, fd):
                    raise WorkspaceFileError(
                        path, "symlink", f"{path} passes through a symbolic link, which is not followed."
                    ) from None
                if not isinstance(exc, FileNotFoundError):
                    raise
                if not create:
                    raise
                with suppress(FileExistsError):
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    except OSError as exc:
        raise _error(path, exc) from None
    finally:
        os.close(fd)


def read_bytes(root: str, path: str, *, limit: int) -> bytes:
    """The content of the regular file `path`; WorkspaceFileError past `limit` bytes."""
    parts = _parts(path)
    if not parts:
        raise WorkspaceFileError(path, "not_a_file", "The path names no file.")
    with _folder(root, path, parts[:-1]) as folder:
        try:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=folder)
        except OSError as exc:
            raise _error(path, exc) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise WorkspaceFileError(path, "not_a_file", f"{path} is not a regular file.")
            if info.st_size > limit:
                raise WorkspaceFileError(path, "too_large", f"{path} has {info.st_size} bytes; at most {limit}.")
            chunks, total = [], 0
            while chunk := os.read(fd, 1 << 16):
                total += len(chunk)
                if total > limit:
                    raise WorkspaceFileError(path, "too_large", f"{path} has more than {limit} bytes.")
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise _error(path, exc) from None
        finally:
            os.close(fd)


def write_bytes(root: str, path: str, data: bytes) -> None:
    """Create or replace the file `path` with `data`, creating its folders; never through a link."""
    parts = _parts(path)
    if not parts:
        raise WorkspaceFileError(path, "not_a_file", "The path names no file.")
    with _folder(root, path, parts[:-1], create=True) as folder:
        temporary = f".orket-{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temporary, _NEW_FILE_FLAGS, FILE_MODE, dir_fd=folder)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)
            _refuse_folder_in_the_way(folder, parts[-1], path)
            os.rename(temporary, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
        except OSError as exc:
            _unlink_quietly(temporary, folder)
            raise _error(path, exc) from None
        except WorkspaceFileError:
            _unlink_quietly(temporary, folder)
            raise


def _refuse_folder_in_the_way(folder: int, name: str, path: str) -> None:
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise WorkspaceFileError(path, "not_a_file", f"{path} is a folder, not a file.")


def _unlink_quietly(name: str, folder: int) -> None:
    with suppress(OSError):
        os.unlink(name, dir_fd=folder)


def delete_file(root: str, path: str) -> None:
    """Remove the file (or link) `path`; a link is removed itself, never what it points to."""
    parts = _parts(path)
    if not parts:
        raise WorkspaceFileError(path, "not_a_file", "The path names no file.")
    with _folder(root, path, parts[:-1]) as folder:
        try:
            info = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise WorkspaceFileError(path, "not_a_file", f"{path} is a folder, not a file.")
            os.unlink(parts[-1], dir_fd=folder)
        except OSError as exc:
            raise _error(path, exc) from None


def list_folder(root: str, path: str, *, limit: int) -> list[Entry]:
    """The entries of folder `path` (sorted by name, `.git` left out), at most `limit` of them."""
    with _folder(root, path, _parts(path)) as folder:
        try:
            with os.scandir(folder) as found:
                entries = [
                    Entry(entry.name, entry.is_dir(follow_symlinks=False)) for entry in found if entry.name != ".git"
                ]
        except OSError as exc:
            raise _error(path, exc) from None
    return sorted(entries, key=lambda entry: entry.name)[:limit]


def walk_files(root: str, path: str) -> Iterator[tuple[str, int]]:
    """(workspace-relative path, parent folder descriptor) of every regular file under `path`, in name
    order, without entering links or `.git`. The descriptor is valid only until the next item."""
    parts = _parts(path)
    base = "/".join(parts)
    with _folder(root, path, parts[:-1] if parts else []) as parent:
        if parts:
            info = _stat_or_none(parts[-1], parent)
            if info is not None and stat.S_ISREG(info.st_mode):
                yield base, parent
                return
        top = parts[-1] if parts else "."
        for folder_path, folders, files, folder_fd in os.fwalk(top, dir_fd=parent, follow_symlinks=False):
            folders[:] = sorted(name for name in folders if name != ".git")
            relative = (base + folder_path[len(top) :]).strip("/")
            for name in sorted(files):
                info = _stat_or_none(name, folder_fd)
                if info is not None and stat.S_ISREG(info.st_mode):
                    yield (f"{relative}/{name}" if relative else name), folder_fd


def read_in_folder(folder: int, name: str, *, limit: int) -> bytes | None:
    """The first `limit` bytes of regular file `name` in an open folder; None when it is not readable."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=folder)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def _is_link(name: str, folder: int) -> bool:
    info = _stat_or_none(name, folder)
    return info is not None and stat.S_ISLNK(info.st_mode)


def _stat_or_none(name: str, folder: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return None


@dataclass(frozen=True)
class EntryInfo:
    name: str
    kind: str  # "dir", "file", "link" or "other"
    size: int


def list_folder_info(root: str, path: str, *, limit: int) -> tuple[list[EntryInfo], int]:
    """The entries of folder `path` with their kind and size (links are reported, never followed), sorted
    folders first then by name, `.git` left out: at most `limit` of them, and how many there are in all."""
    with _folder(root, path, _parts(path)) as folder:
        try:
            with os.scandir(folder) as found:
                entries = [_entry_info(entry) for entry in found if entry.name != ".git"]
        except OSError as exc:
            raise _error(path, exc) from None
    entries.sort(key=lambda entry: (entry.kind != "dir", entry.name))
    return entries[:limit], len(entries)


def _entry_info(entry: os.DirEntry[str]) -> EntryInfo:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return EntryInfo(entry.name, "other", 0)
    if stat.S_ISLNK(info.st_mode):
        return EntryInfo(entry.name, "link", 0)
    if stat.S_ISDIR(info.st_mode):
        return EntryInfo(entry.name, "dir", 0)
    if stat.S_ISREG(info.st_mode):
        return EntryInfo(entry.name, "file", info.st_size)
    return EntryInfo(entry.name, "other", 0)


def read_head(root: str, path: str, *, limit: int) -> tuple[bytes, int]:
    """The first `limit` bytes of the regular file `path` and its size; never through a link."""
    parts = _parts(path)
    if not parts:
        raise WorkspaceFileError(path, "not_a_file", "The path names no file.")
    with _folder(root, path, parts[:-1]) as folder:
        try:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=folder)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK) or _is_link(parts[-1], folder):
                raise WorkspaceFileError(
                    path, "symlink", f"{path} is a symbolic link, which is not followed."
                ) from None
            raise _error(path, exc) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise WorkspaceFileError(path, "not_a_file", f"{path} is not a regular file.")
            chunks, total = [], 0
            while total < limit and (chunk := os.read(fd, min(1 << 16, limit - total))):
                chunks.append(chunk)
                total += len(chunk)
            return b"".join(chunks), info.st_size
        except OSError as exc:
            raise _error(path, exc) from None
        finally:
            os.close(fd)

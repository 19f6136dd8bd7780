"""Files a driver keeps on disk, each replaced atomically.

Readers (the data plane, a restarted operator) see the old file or the new one, never a torn
one: every write goes to a temporary file beside the target and is renamed over it. Batches of
files are synced once (``write_many``), so a thousand small files do not cost a thousand disk
commits one after the other.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def atomic_write(path: Path, text: str, mode: int = 0o644, durable: bool = True) -> None:
    """Readers see the old file or the new one, never a torn one (tempfile + os.replace).

    ``durable`` also syncs the data before the rename, so that a power loss cannot leave an
    empty file behind. A killed process needs no sync (the page cache survives it), and files
    rendered again at every start (``conf.d``) or kept for counting only skip it.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_many(texts: Mapping[Path, str | None], mode: int = 0o644, durable: bool = True) -> None:
    """``atomic_write`` of many files (None: remove the file), synced as one batch.

    Every new file is written first, then (``durable``) all are synced, then all are renamed
    into place: on a journalling file system the first sync commits the whole batch, so a
    thousand VIP files do not cost a thousand commits one after the other. Each file on its
    own is still replaced atomically; the files are synced in groups of :data:`SYNC_GROUP`
    open descriptors (never near the process's limit).
    """
    staged: list[tuple[str, Path]] = []
    unsynced: list[int] = []
    try:
        for path, text in texts.items():
            if text is None:
                continue
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            staged.append((tmp, path))
            unsynced.append(fd)
            with open(fd, "w", closefd=False) as handle:
                handle.write(text)
            os.fchmod(fd, mode)
            if not durable:
                os.close(unsynced.pop())
            elif len(unsynced) >= SYNC_GROUP:
                _sync_and_close(unsynced)
        _sync_and_close(unsynced)
        while staged:
            tmp, path = staged.pop()
            os.replace(tmp, path)
    finally:
        for fd in unsynced:
            os.close(fd)
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    for path, text in texts.items():
        if text is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


SYNC_GROUP = 128


def _sync_and_close(fds: list[int]) -> None:
    while fds:
        fd = fds[-1]
        os.fsync(fd)
        os.close(fds.pop())


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def restore(path: Path, text: str | None) -> None:
    """Put back what ``read_text`` returned before a failed change (None = no file)."""
    if text is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        atomic_write(path, text)

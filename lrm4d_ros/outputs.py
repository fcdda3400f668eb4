"""Output paths checked before the work that fills them (light: no torch), so that an evaluation or a
reconstruction is not run only to fail at its last write."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_writable(path: str | Path, flag: str, is_dir: bool = True) -> None:
    """OSError naming `flag` unless `path` (a directory, or a file where not is_dir) can be written here: the
    nearest existing folder on the way to it takes a new file (a read-only file system, an immutable or foreign
    folder refuse it; root ignores permission bits, so this tries rather than asks os.access)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() if is_dir else path.is_dir()):
        raise NotADirectoryError(f"{flag} {path} is {'a file' if is_dir else 'a directory'}, not "
                                 f"{'a directory' if is_dir else 'a file name'}")
    folder = path if is_dir else path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"{flag} {path}: {folder} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
        if not is_dir and path.exists():
            with open(path, "ab"):  # opened to append and closed: its contents stay as they are
                pass
    except OSError as exc:
        raise PermissionError(f"{flag} {path} cannot be written ({folder}: "
                              f"{exc.strerror or os.strerror(exc.errno or 0)})") from None

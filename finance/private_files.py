"""Files that hold bank data or keys are their owner's only: folders 0700, files 0600, whatever the umask says.

- `private_process()`, first thing in each entry point (`python -m finance`, `streamlit run app.py`), sets the
  process's umask to 077, so the files the app does not create itself are born 0600 too: DuckDB's write-ahead log
  (deleted and re-created at every checkpoint, so a chmod would not last), the analysts' snapshot, temporary files.
- `private_dir(path)` creates a folder and its missing parents 0700; an existing folder is left as it is.
- `write_private(path, data)` replaces a file atomically with one of mode 0600.
- `make_private(path)` takes group's and others' access to a file away (the DuckDB file, which DuckDB creates).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

PRIVATE_UMASK = 0o077
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_process() -> None:
    """Make every file this process creates from now on readable and writable by its owner only."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """`path`, created with mode 0700 (and each missing parent too) when it does not exist yet."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:  # another process or thread made it first: theirs stands
            continue
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode is narrowed by the umask, never widened: set it exactly
    return path


def write_private(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace `path` with `data` in a file of mode 0600, atomically (a temporary file, then a rename), so another
    process never reads half a file; `durable` also waits until the bytes are on disk (keys)."""
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)  # a file left by an earlier crash keeps its mode through O_CREAT
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def make_private(path: Path) -> None:
    """Take group's and others' access to `path` away, when it exists; the owner's bits stay as they are (a file
    made read-only on purpose stays read-only). A file of another owner is left to them."""
    try:
        mode = os.stat(path).st_mode
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except (FileNotFoundError, PermissionError):
        pass


def fsync_path(path: Path) -> None:
    """Make a file's content, or the renames in a folder, durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

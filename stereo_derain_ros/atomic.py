"""Atomic file writes: a reader sees the old file or the whole new one, never half of it.

Everything the package writes that another process may read while it is written (checkpoints,
pools, benchmark results, reports, the README) goes through `atomic_path`. Bags are folders and
use the same idea at folder level (`bagio.atomic`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
import os
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` only if the block succeeds.

    The sibling lives in the same folder (so the final rename is atomic) and is named after this
    process, so concurrent writers never share one; on any error it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)

"""All-or-nothing creation of an output bag directory.

A rosbag2 directory is only meaningful once `metadata.yaml` is written at the very end, and a
half-written bag that merely looks complete is worse than none. The bag is therefore built as
`OUTPUT.partial-<pid>/OUTPUT` (the inner name is the one the storage files take, so a finished
bag holds plain `OUTPUT_0.mcap`-style names) and moved to OUTPUT only after the writer has
closed it cleanly and its MCAP chunk checksums are filled in; any error or interrupt removes it.
A process killed outright (SIGKILL, power loss) cannot clean up: the next run recognises the
leftover by its dead PID and removes it, and refuses one whose process still runs.
"""

from collections.abc import Iterator
import contextlib
import logging
import os
from pathlib import Path
import re
import shutil
import tempfile

from stereo_derain_ros.bagio import BagError
from stereo_derain_ros.bagio.mcap_crc import write_chunk_crcs

LOGGER = logging.getLogger(__name__)


def partial_path(output: Path) -> Path:
    """Return the temporary sibling folder in which `output` is built by this process."""
    return output.with_name(f'{output.name}.partial-{os.getpid()}')


def _partials(output: Path) -> list[tuple[Path, int]]:
    """Return the `output.partial-<pid>` siblings with their PIDs."""
    pattern = re.compile(re.escape(output.name) + r'\.partial-(\d+)')
    if not output.parent.is_dir():
        return []
    return sorted((path, int(match[1])) for path in output.parent.iterdir()
                  if (match := pattern.fullmatch(path.name)))


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover: this process is not writing it now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_output_path(output: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an output that could not be written, before any expensive work starts.

    That is: an input bag, an existing path (unless `overwrite`), a folder this process cannot
    create files in (tried for real: permission bits do not stop root, a read-only mount
    does), or one that another running process is writing.
    """
    resolved = output.resolve()
    for input_path in inputs:
        if resolved == input_path.resolve():
            raise BagError(f'output {output} is the input bag; choose another output path')
    if output.exists() and not overwrite:
        raise BagError(f'output {output} exists already; pass --overwrite to replace it')
    if output.exists() and not output.is_dir():
        raise BagError(f'output {output} exists and is not a bag directory; refusing to remove it')
    if not output.parent.is_dir():
        raise BagError(f'output directory {output.parent} does not exist')
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f'.{output.name}.probe-', dir=output.parent))
    except OSError as error:
        raise BagError(f'output directory {output.parent} is not writable ({error.strerror}); '
                       'expected a folder this user can create files in') from None
    for path, pid in _partials(output):
        if _running(pid):
            raise BagError(f'{path} is being written by process {pid}, which is still running; '
                           'wait for it or choose another output path')


def remove_stale_partials(output: Path) -> list[Path]:
    """Remove leftovers of runs killed while writing `output` (their PID is gone); list them."""
    removed = []
    for path, pid in _partials(output):
        if not _running(pid):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            LOGGER.warning('removed %s, left by process %d that was killed while writing it',
                           path, pid)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_bag_directory(output: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a path (not yet existing) to write a bag into; it becomes `output` on success.

    The caller's writer creates the yielded directory. With `overwrite`, an existing `output`
    is removed only after the new bag is complete, so a failed run keeps the old one.
    """
    check_output_path(output, overwrite)
    remove_stale_partials(output)
    folder = partial_path(output)
    folder.mkdir()
    temporary = folder / output.name
    try:
        yield temporary
        if not temporary.is_dir():
            raise BagError(f'no bag was written to {temporary}')
        for storage in temporary.glob('*.mcap'):
            write_chunk_crcs(storage)
        if output.exists():
            shutil.rmtree(output)
        temporary.rename(output)
        folder.rmdir()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise

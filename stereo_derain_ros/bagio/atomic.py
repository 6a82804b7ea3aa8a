"""All-or-nothing creation of an output bag directory.

A rosbag2 directory is only meaningful once `metadata.yaml` is written at the very end, and a
half-written bag that merely looks complete is worse than none. The bag is therefore built in a
sibling `OUTPUT.partial-<pid>` directory that is renamed to OUTPUT only after the writer has
closed it cleanly, and removed on any error or interrupt.
"""

from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import shutil

from stereo_derain_ros.bagio import BagError


def partial_path(output: Path) -> Path:
    """Return the temporary sibling path in which `output` is built by this process."""
    return output.with_name(f'{output.name}.partial-{os.getpid()}')


def check_output_path(output: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse an output that exists (unless `overwrite`) or that is one of the input bags."""
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


@contextlib.contextmanager
def atomic_bag_directory(output: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a path (not yet existing) to write a bag into; it becomes `output` on success.

    The caller's writer creates the yielded directory. With `overwrite`, an existing `output`
    is removed only after the new bag is complete, so a failed run keeps the old one.
    """
    check_output_path(output, overwrite)
    temporary = partial_path(output)
    if temporary.exists():
        shutil.rmtree(temporary)
    try:
        yield temporary
        if not temporary.is_dir():
            raise BagError(f'no bag was written to {temporary}')
        if output.exists():
            shutil.rmtree(output)
        temporary.rename(output)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise

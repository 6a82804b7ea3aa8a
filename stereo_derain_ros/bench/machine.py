"""Describe the machine a benchmark ran on, so that every published number carries its context."""

from datetime import datetime, UTC
import os
from pathlib import Path
import platform
import shlex
import subprocess
import sys

from stereo_derain_ros import __version__


def cpu_model() -> str:
    """Return the CPU's marketing name (Linux /proc/cpuinfo, else what platform knows)."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(directory: Path | None = None) -> str | None:
    """Return the checkout's commit hash, suffixed `-dirty` when tracked files were modified."""
    directory = directory or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=directory, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=directory, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f'{commit}-dirty' if dirty else commit


def command_line(argv: list[str] | None = None) -> str:
    """Return the command as a user would retype it (`stereo-derain ...`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(['stereo-derain', *argv])


def describe_machine(argv: list[str] | None = None) -> dict:
    """Return machine, software versions and command line as a JSON-serialisable dict."""
    import psutil
    import torch

    info = {
        'cpu': cpu_model(),
        'logical_cores': os.cpu_count(),
        'physical_cores': psutil.cpu_count(logical=False),
        'memory_gb': round(psutil.virtual_memory().total / 2**30, 1),
        'torch_threads': torch.get_num_threads(),
        # Other work on the machine skews every number; record how busy it was at the start.
        'load_average_1m': round(os.getloadavg()[0], 2),
        'os': platform.platform(),
        'python': platform.python_version(),
        'torch': torch.__version__,
        'cuda': torch.version.cuda,
        'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        'package_version': __version__,
        'git_commit': git_commit(),
        'command': command_line(argv),
        'date_utc': datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ'),
    }
    return info

"""A ROS process under test (the node, or the benchmark's relay), as the demo and bench run it.

One harness for both: an isolated ROS environment (own domain, localhost discovery, the package's
large-image transport), the `--ros-args` command line, a log file, and a stop that asks like
Ctrl-C would and kills only after a grace period. The caller's own rclpy must be initialised
after `isolated_ros_environment()`, so that it shares the domain and transport.
"""

from collections.abc import Mapping
import os
from pathlib import Path
import random
import signal
import subprocess
import sys

import stereo_derain_ros
from stereo_derain_ros.transport import apply_large_image_profile

STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 8


class NodeProcessError(RuntimeError):
    """The process under test exited early or did not become ready."""


def isolated_ros_environment() -> dict[str, str]:
    """Set a private DDS domain (unless one is chosen), localhost discovery and the transport.

    Set in this process's environment because the caller's rclpy must share the child's domain
    and Fast DDS profile; returns the environment for the child.
    """
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    apply_large_image_profile()
    package_root = str(Path(stereo_derain_ros.__file__).resolve().parent.parent)
    python_path = os.environ.get('PYTHONPATH', '')
    return {**os.environ, 'PYTHONUNBUFFERED': '1',
            'PYTHONPATH': os.pathsep.join(p for p in (package_root, python_path) if p)}


def ros_command(module: str, node_name: str, remaps: Mapping[str, str],
                parameters: Mapping[str, object]) -> list[str]:
    """Return `python -m module --ros-args ...` with a node name, remappings and parameters."""
    arguments = ['-r', f'__node:={node_name}']
    for source, target in remaps.items():
        arguments += ['-r', f'{source}:={target}']
    for name, value in parameters.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        arguments += ['-p', f'{name}:={text}']
    return [sys.executable, '-m', module, '--ros-args', *arguments]


class NodeProcess:
    """Run a command with its output in `log_path`; always stopped on leaving the context."""

    def __init__(self, command: list[str], log_path: Path, env: Mapping[str, str]) -> None:
        self.command = command
        self.log_path = Path(log_path)
        self._env = dict(env)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> 'NodeProcess':
        with open(self.log_path, 'w') as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            env=self._env, start_new_session=True)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def check_running(self, doing: str) -> None:
        """Raise with the end of the log if the process has exited."""
        if self.process.poll() is not None:
            raise NodeProcessError(f'{self.log_path.stem} exited with status '
                                   f'{self.process.returncode} {doing}: {self.log_tail()}')

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log_path.read_text(errors='replace').strip().splitlines()
        return ' | '.join(text[-lines:]) or '(no output)'

    def stop(self) -> None:
        """Ask the process to shut down like Ctrl-C would; kill it if it does not in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

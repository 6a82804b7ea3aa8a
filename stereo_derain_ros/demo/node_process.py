"""The real `stereo_derain_node` in its own process, started and always stopped by the demo.

The node runs as a subprocess, as it would on a robot, so the demo measures the same DDS hops a
user gets; its ROS environment is isolated (own domain, localhost discovery) so that a demo on a
shared network neither hears nor disturbs other ROS graphs.
"""

from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import time

import stereo_derain_ros
from stereo_derain_ros.demo import DemoError
from stereo_derain_ros.demo.config import DemoConfig

INPUT_NAMESPACE = '/stereo'
OUTPUT_NAMESPACE = '/stereo_derained'
NODE_NAME = 'demo_derain_node'
SIDES = ('left', 'right')
INPUT_TOPICS = tuple(f'{INPUT_NAMESPACE}/{side}/{leaf}' for side in SIDES
                     for leaf in ('image_rect', 'camera_info'))
OUTPUT_IMAGE_TOPICS = tuple(f'{OUTPUT_NAMESPACE}/{side}/image_rect' for side in SIDES)
OUTPUT_INFO_TOPICS = tuple(f'{OUTPUT_NAMESPACE}/{side}/camera_info' for side in SIDES)
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 8


def isolate_ros_environment() -> dict[str, str]:
    """Set a private DDS domain (unless the user chose one) and localhost-only discovery.

    Set in this process's environment because the in-process rclpy recorder and replayer must
    share the node's domain; returns the environment for the node's subprocess.
    """
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    package_root = str(Path(stereo_derain_ros.__file__).resolve().parent.parent)
    python_path = os.environ.get('PYTHONPATH', '')
    return {**os.environ, 'PYTHONUNBUFFERED': '1',
            'PYTHONPATH': os.pathsep.join(p for p in (package_root, python_path) if p)}


def weights_arguments(config: DemoConfig) -> tuple[list[str], str]:
    """Return the node's weight parameters and a description of the weights for the report."""
    from stereo_derain_ros.engine.weights import packaged_weights

    if config.weights is not None:
        return ['-p', f'weights:={config.weights.resolve()}'], str(config.weights)
    if config.untrained:
        return (['-p', 'allow_untrained_weights:=true'],
                'UNTRAINED (random initialisation; the output shows the pipeline, not deraining)')
    packaged = packaged_weights(config.model)
    if packaged is None:
        raise DemoError(
            f'no trained weights are packaged for model {config.model!r} yet; pass --weights '
            'PATH to a checkpoint, or --untrained to see the pipeline run with random weights')
    return [], f'packaged default ({packaged.name})'


def node_command(config: DemoConfig, weight_args: list[str]) -> list[str]:
    """Return the command line of the node, remapped from the bag's topics to its own.

    The node's inputs are made reliable (a standard QoS override): a 640x360 rgb8 image is
    fragmented over UDP, and on a loaded 2-core machine the node's default best-effort
    subscription loses most of them to a single missing fragment. Reliable delivery resends it,
    so the demo measures deraining, not transport loss.
    """
    remaps = []
    for topic in INPUT_TOPICS:
        remaps += ['-r', f'{topic[len(INPUT_NAMESPACE) + 1:]}:={topic}',
                   '-p', f'qos_overrides.{topic}.subscription.reliability:=reliable']
    return [sys.executable, '-m', 'stereo_derain_ros.node', '--ros-args',
            '-r', f'__node:={NODE_NAME}', *remaps,
            '-p', f'output_namespace:={OUTPUT_NAMESPACE}', '-p', f'model:={config.model}',
            '-p', f'device:={config.device}', *weight_args]


@contextlib.contextmanager
def running_node(command: list[str], log_path: Path, env: dict[str, str]
                 ) -> Iterator[subprocess.Popen]:
    """Run the node with its output in `log_path`; stop it on exit, even on error or Ctrl-C."""
    with open(log_path, 'w') as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            yield process
        finally:
            stop_node(process)


def stop_node(process: subprocess.Popen) -> None:
    """Ask the node to shut down like Ctrl-C would; kill it if it does not within the grace."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log_path: Path) -> str:
    lines = log_path.read_text(errors='replace').strip().splitlines()
    return ' | '.join(lines[-LOG_TAIL_LINES:]) or '(no output)'


def wait_until_ready(process: subprocess.Popen, graph_node, log_path: Path,
                     timeout_s: float) -> float:
    """Wait until the node subscribes to every input and publishes its outputs; return seconds.

    A node that exits first (bad weights, bad parameter) raises with the end of its log, so the
    user sees the node's own one-line reason.
    """
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            raise DemoError(f'the node exited with status {process.returncode} before it was '
                            f'ready: {log_tail(log_path)}')
        subscribed = all(graph_node.count_subscribers(t) > 0 for t in INPUT_TOPICS)
        publishing = all(graph_node.count_publishers(t) > 0 for t in OUTPUT_IMAGE_TOPICS)
        if subscribed and publishing:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise DemoError(f'the node was not ready after {timeout_s:.0f} s (see {log_path}): '
                            f'{log_tail(log_path)}')
        time.sleep(0.1)

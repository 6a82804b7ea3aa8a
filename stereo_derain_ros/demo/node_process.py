"""The real `stereo_derain_node` in its own process, started and always stopped by the demo.

The node runs as a subprocess, as it would on a robot, so the demo measures the same DDS hops a
user gets; its ROS environment is isolated (own domain, localhost discovery) so that a demo on a
shared network neither hears nor disturbs other ROS graphs.
"""

from collections.abc import Iterator
import contextlib
from pathlib import Path
import time

from stereo_derain_ros.demo import DemoError
from stereo_derain_ros.demo.config import DemoConfig
from stereo_derain_ros.node_process import (
    isolated_ros_environment,
    NodeProcess,
    NodeProcessError,
    ros_command,
)

INPUT_NAMESPACE = '/stereo'
OUTPUT_NAMESPACE = '/stereo_derained'
NODE_NAME = 'demo_derain_node'
SIDES = ('left', 'right')
INPUT_TOPICS = tuple(f'{INPUT_NAMESPACE}/{side}/{leaf}' for side in SIDES
                     for leaf in ('image_rect', 'camera_info'))
OUTPUT_IMAGE_TOPICS = tuple(f'{OUTPUT_NAMESPACE}/{side}/image_rect' for side in SIDES)
OUTPUT_INFO_TOPICS = tuple(f'{OUTPUT_NAMESPACE}/{side}/camera_info' for side in SIDES)


def isolate_ros_environment() -> dict[str, str]:
    """Return the node's environment; this process joins the same private domain."""
    return isolated_ros_environment()


def weights_arguments(config: DemoConfig) -> tuple[dict[str, object], str]:
    """Return the node's weight parameters and a description of the weights for the report."""
    from stereo_derain_ros.engine.weights import packaged_weights

    if config.weights is not None:
        return {'weights': config.weights.resolve()}, str(config.weights)
    if config.untrained:
        return ({'allow_untrained_weights': True},
                'UNTRAINED (random initialisation; the output shows the pipeline, not deraining)')
    packaged = packaged_weights(config.model)
    if packaged is None:
        raise DemoError(
            f'no trained weights are packaged for model {config.model!r} yet; pass --weights '
            'PATH to a checkpoint, or --untrained to see the pipeline run with random weights')
    return {}, f'packaged default ({packaged.name})'


def node_command(config: DemoConfig, weight_args: dict[str, object]) -> list[str]:
    """Return the command line of the node, remapped from the bag's topics to its own.

    The node keeps its default sensor-data QoS: the package's large-image transport
    (`isolate_ros_environment`) delivers best-effort images between processes.
    """
    remaps = {topic[len(INPUT_NAMESPACE) + 1:]: topic for topic in INPUT_TOPICS}
    parameters = {'output_namespace': OUTPUT_NAMESPACE, 'model': config.model,
                  'device': config.device, **weight_args}
    return ros_command('stereo_derain_ros.node', NODE_NAME, remaps, parameters)


@contextlib.contextmanager
def running_node(command: list[str], log_path: Path, env: dict[str, str]
                 ) -> Iterator[NodeProcess]:
    """Run the node with its output in `log_path`; stop it on exit, even on error or Ctrl-C."""
    with NodeProcess(command, log_path, env) as process:
        yield process


def wait_until_ready(process: NodeProcess, graph_node, timeout_s: float) -> float:
    """Wait until the node subscribes to every input and publishes its outputs; return seconds.

    A node that exits first (bad weights, bad parameter) raises with the end of its log, so the
    user sees the node's own one-line reason.
    """
    started = time.monotonic()
    while True:
        try:
            process.check_running('before it was ready')
        except NodeProcessError as error:
            raise DemoError(str(error)) from None
        subscribed = all(graph_node.count_subscribers(t) > 0 for t in INPUT_TOPICS)
        publishing = all(graph_node.count_publishers(t) > 0 for t in OUTPUT_IMAGE_TOPICS)
        if subscribed and publishing:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise DemoError(f'the node was not ready after {timeout_s:.0f} s (see '
                            f'{process.log_path}): {process.log_tail()}')
        time.sleep(0.1)

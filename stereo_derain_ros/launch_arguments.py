"""What the launch files pass to the node, as plain functions (launch itself is not needed).

The launch files declare one argument per node parameter with an empty default and forward only
the arguments that were given, so a value in the params file is never overridden by a launch
default. Keeping the conversion here lets the tests check forwarding without `launch_ros`, which
is not installable from PyPI.
"""

from collections.abc import Callable, Mapping
from typing import Any

from stereo_derain_ros.node_params import PARAMETER_TABLE, PARAMETERS

IMAGE_LEAVES = ('image_rect', 'image_rect_color', 'image_raw')
# The leaf a rectifying driver or image_proc offers for colour and mono cameras alike.
DEFAULT_IMAGE_LEAF = 'image_rect'
DEFAULT_INPUT_NAMESPACE = '/stereo'
DEFAULT_NODE_NAME = 'stereo_derain_node'
NODE_INPUTS = ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info')
TRUE_WORDS, FALSE_WORDS = ('true', 'yes', '1'), ('false', 'no', '0')

# Launch arguments that are not node parameters: (default, description).
LAUNCH_ONLY_ARGUMENTS = {
    'namespace': ('', 'namespace of the node; its outputs and diagnostics name follow it'),
    'node_name': (DEFAULT_NODE_NAME, 'name of the node (unique per stereo head)'),
    'input_namespace': (DEFAULT_INPUT_NAMESPACE,
                        'namespace holding left/ and right/ image and camera_info topics'),
    'image_leaf': (DEFAULT_IMAGE_LEAF, f'leaf name of the input image topics: '
                   f'{", ".join(IMAGE_LEAVES)}'),
    'reliable_inputs': ('', 'true = subscribe the inputs reliably (the publisher must be '
                        'reliable); empty = the params file (sensor-data QoS, best effort)'),
    'use_sim_time': ('', 'true = follow /clock (ros2 bag play --clock); empty = false'),
}


def parameter_arguments() -> dict[str, str]:
    """Return {argument: description} of the node parameters forwarded when given."""
    return {spec.name: f'{spec.description}; empty = the params file' for spec in PARAMETERS}


def declare_arguments(declare: Callable[..., Any], params_file_default: object) -> list[Any]:
    """Declare every argument of the node's launch files with `declare` (DeclareLaunchArgument).

    Passed in, because launch is only importable where ROS is installed; `params_file_default`
    is the installed config, a launch substitution.
    """
    rows = [('params_file', params_file_default, 'parameters file of the node')]
    rows += [(name, default, text) for name, (default, text) in LAUNCH_ONLY_ARGUMENTS.items()]
    rows += [(name, '', text) for name, text in parameter_arguments().items()]
    return [declare(name, default_value=default, description=text)
            for name, default, text in rows]


def convert(name: str, text: str) -> object:
    """Turn a launch argument's text into the parameter's type, or explain what was expected."""
    kind = PARAMETER_TABLE[name].type if name in PARAMETER_TABLE else bool
    if kind is bool:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise ValueError(f'launch argument {name}:={text!r} must be true or false')
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f'launch argument {name}:={text!r} must be a {kind.__name__}') from None


def parameter_overrides(given: Mapping[str, str]) -> dict[str, object]:
    """Return the node parameters set on the command line (non-empty arguments only)."""
    names = [*PARAMETER_TABLE, 'use_sim_time']
    return {name: convert(name, given[name]) for name in names if given.get(name, '') != ''}


def input_topic(input_namespace: str, side: str, leaf: str) -> str:
    return f'{input_namespace.rstrip("/")}/{side}/{leaf}'


def input_remappings(input_namespace: str, image_leaf: str) -> list[tuple[str, str]]:
    """Map the node's input topics (raw and compressed) onto the camera's topics."""
    if image_leaf not in IMAGE_LEAVES:
        raise ValueError(f'image_leaf:={image_leaf!r} must be one of {", ".join(IMAGE_LEAVES)}')
    remappings = []
    for topic in NODE_INPUTS:
        side, leaf = topic.split('/')
        if leaf == 'camera_info':
            remappings.append((topic, input_topic(input_namespace, side, 'camera_info')))
        else:
            target = input_topic(input_namespace, side, image_leaf)
            remappings += [(topic, target), (f'{topic}/compressed', f'{target}/compressed')]
    return remappings


def reliable_input_overrides(input_namespace: str, image_leaf: str, reliable: str
                             ) -> dict[str, str]:
    """Return QoS override parameters making every input subscription reliable, if asked."""
    if reliable == '' or not convert('reliable_inputs', reliable):
        return {}
    return {f'qos_overrides.{target}.subscription.reliability': 'reliable'
            for _, target in input_remappings(input_namespace, image_leaf)
            if not target.endswith('/compressed')}


def _from_params_file(params_file: str, node_name: str, name: str) -> object | None:
    """Return a parameter's value in a ROS params file (for this node or `/**`), if it is set."""
    import yaml

    with open(params_file) as stream:
        document = yaml.safe_load(stream) or {}
    for key, section in document.items():
        if key.lstrip('/') in ('**', node_name) or key.endswith(f'/{node_name}'):
            value = (section or {}).get('ros__parameters', {}).get(name)
            if value is not None:
                return value
    return None


def output_namespace(given: Mapping[str, str], params_file: str) -> str:
    """Return where the node will publish: argument, else params file, else the default.

    The disparity launch points stereo_image_proc there, so it must agree with the node.
    """
    value = (given.get('output_namespace') or _from_params_file(
        params_file, given.get('node_name') or DEFAULT_NODE_NAME, 'output_namespace')
        or PARAMETER_TABLE['output_namespace'].default)
    if str(value).startswith('/'):
        return str(value)
    namespace = given.get('namespace', '').strip('/')
    return f'/{namespace}/{value}' if namespace else f'/{value}'

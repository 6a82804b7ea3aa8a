"""Static checks of the launch files and config (launch and launch_ros are not installable here).

The launch files are parsed with `ast`, so these tests catch what `ros2 launch` would only
discover on a robot: executables that do not exist, remappings of topics the node does not
have, parameters the node does not declare and a config drifting from the node's defaults.
"""

import ast
from pathlib import Path

import pytest
import yaml

from stereo_derain_ros.node import INPUT_TOPICS
from stereo_derain_ros.node_params import parameter_defaults

from conftest import REPO_ROOT

LAUNCH_DIR = REPO_ROOT / 'launch'
CONFIG = REPO_ROOT / 'config' / 'stereo_derain.yaml'
LAUNCH_FILES = sorted(LAUNCH_DIR.glob('*.launch.py'))
# Documented in ros2-conventions.md section 1.3 (stereo_image_proc 5.0.x launch arguments).
STEREO_IMAGE_PROC_ARGUMENTS = {
    'approximate_sync', 'avoid_point_cloud_padding', 'use_color', 'launch_image_proc',
    'namespace', 'left_namespace', 'right_namespace', 'container', 'stereo_algorithm',
    'prefilter_size', 'prefilter_cap', 'correlation_window_size', 'min_disparity',
    'disparity_range', 'texture_threshold', 'speckle_size', 'speckle_range', 'disp12_max_diff',
    'uniqueness_ratio', 'P1', 'P2', 'sgbm_mode'}


# Declared by rclpy itself on every node.
RCLPY_PARAMETERS = {'use_sim_time', 'start_type_description_service'}


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name]


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def literal_strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def declared_arguments(tree: ast.AST) -> set[str]:
    names = set()
    for call in calls(tree, 'DeclareLaunchArgument'):
        first = call.args[0]
        if isinstance(first, ast.Constant):
            names.add(first.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == \
                'FORWARDED_ARGUMENTS':
            names |= set(ast.literal_eval(node.value))
    return names


def console_scripts() -> set[str]:
    tree = parse(REPO_ROOT / 'setup.py')
    entry_points = keyword(calls(tree, 'setup')[0], 'entry_points')
    scripts = ast.literal_eval(entry_points)['console_scripts']
    return {line.split('=')[0].strip() for line in scripts}


def test_both_launch_files_exist_and_define_generate_launch_description():
    assert {p.name for p in LAUNCH_FILES} == {
        'stereo_derain.launch.py', 'stereo_derain_disparity.launch.py'}
    for path in LAUNCH_FILES:
        functions = {n.name for n in parse(path).body if isinstance(n, ast.FunctionDef)}
        assert 'generate_launch_description' in functions, path.name


def test_main_launch_file_declares_the_documented_arguments():
    arguments = declared_arguments(parse(LAUNCH_DIR / 'stereo_derain.launch.py'))
    assert {'input_namespace', 'output_namespace', 'image_leaf', 'params_file', 'model',
            'weights', 'device', 'use_sim_time'} <= arguments
    leaf = next(c for c in calls(parse(LAUNCH_DIR / 'stereo_derain.launch.py'),
                                 'DeclareLaunchArgument') if c.args[0].value == 'image_leaf')
    assert set(ast.literal_eval(keyword(leaf, 'choices'))) == {
        'image_rect', 'image_rect_color', 'image_raw'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launch_configuration_used_is_declared(path):
    tree = parse(path)
    used = {c.args[0].value for c in calls(tree, 'LaunchConfiguration')
            if isinstance(c.args[0], ast.Constant)}
    assert used <= declared_arguments(tree)


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_executables_are_installed_entry_points(path):
    for node in calls(parse(path), 'Node'):
        assert keyword(node, 'package').value == 'stereo_derain_ros'
        assert keyword(node, 'executable').value in console_scripts()


def test_node_parameters_and_remappings_match_the_node():
    tree = parse(LAUNCH_DIR / 'stereo_derain.launch.py')
    (node,) = calls(tree, 'Node')
    assert keyword(node, 'name').value == 'stereo_derain_node'
    overrides = next(e for e in keyword(node, 'parameters').elts if isinstance(e, ast.Dict))
    keys = {k.value for k in overrides.keys}
    assert keys <= set(parameter_defaults()) | {'use_sim_time'}
    remapped = {pair.elts[0].value for pair in keyword(node, 'remappings').elts}
    node_topics = set(INPUT_TOPICS) | {f'{t}/compressed' for t in INPUT_TOPICS if 'image' in t}
    assert remapped == node_topics


def test_disparity_launch_includes_both_pipelines_with_valid_arguments():
    tree = parse(LAUNCH_DIR / 'stereo_derain_disparity.launch.py')
    includes = calls(tree, 'IncludeLaunchDescription')
    targets = [set(literal_strings(include.args[0])) for include in includes]
    assert {'stereo_derain_ros', 'stereo_derain.launch.py'} <= targets[0]
    assert {'stereo_image_proc', 'stereo_image_proc.launch.py'} <= targets[1]
    forwarded = ast.literal_eval(next(
        n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
        and getattr(n.targets[0], 'id', '') == 'FORWARDED_ARGUMENTS'))
    derain_arguments = declared_arguments(parse(LAUNCH_DIR / 'stereo_derain.launch.py'))
    assert set(forwarded) <= derain_arguments
    image_proc_arguments = keyword(includes[1], 'launch_arguments').func.value
    names = [k.value for k in image_proc_arguments.keys]
    assert set(names) <= STEREO_IMAGE_PROC_ARGUMENTS
    values = dict(zip(names, image_proc_arguments.values))
    assert values['launch_image_proc'].value == 'False'
    assert 'output_namespace' in literal_strings(values['namespace'])


def config_parameters() -> dict[str, object]:
    document = yaml.safe_load(CONFIG.read_text())
    (section,) = document.values()
    return section['ros__parameters']


def test_config_lists_every_parameter_with_its_default():
    assert config_parameters() == parameter_defaults()
    for name, value in config_parameters().items():
        assert type(value) is type(parameter_defaults()[name]), name


def test_node_accepts_the_config_file_and_declares_exactly_its_parameters(rclpy_context):
    from rclpy.parameter import Parameter, parameter_dict_from_yaml_file, parameter_value_to_python

    from stereo_derain_ros.node import StereoDerainNode

    from_yaml = parameter_dict_from_yaml_file(str(CONFIG), use_wildcard=True)
    overrides = [Parameter(name, value=parameter_value_to_python(message.value))
                 for name, message in from_yaml.items() if name != 'enable']
    overrides.append(Parameter('enable', value=False))
    node = StereoDerainNode(context=rclpy_context, parameter_overrides=overrides)
    try:
        declared = {name for name in node._parameters if name not in RCLPY_PARAMETERS
                    and not name.startswith('qos_overrides.')}
        assert declared == set(config_parameters())
        for name, value in config_parameters().items():
            if name != 'enable':
                assert node.get_parameter(name).value == value
    finally:
        node.destroy_node()

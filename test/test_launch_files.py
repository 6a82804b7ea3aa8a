"""Static checks of the launch files and config (launch and launch_ros are not installable here).

The launch files are parsed with `ast`, so these tests catch what `ros2 launch` would only
discover on a robot: executables that do not exist, remappings of topics the node does not
have, parameters the node does not declare and a config drifting from the node's defaults.
"""

import ast
import os
from pathlib import Path
import subprocess
import sys

import pytest
from rclpy.parameter import Parameter
import yaml

from stereo_derain_ros.launch_arguments import (
    declare_arguments,
    input_remappings,
    LAUNCH_ONLY_ARGUMENTS,
    output_namespace,
    parameter_arguments,
    parameter_overrides,
    reliable_input_overrides,
)
from stereo_derain_ros.node import INPUT_TOPICS
from stereo_derain_ros.node_params import parameter_defaults, parameters_markdown

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
    """Arguments declared literally, plus those declared from the launch_arguments table."""
    names = {call.args[0].value for call in calls(tree, 'DeclareLaunchArgument')
             if isinstance(call.args[0], ast.Constant)}
    if any(getattr(node, 'id', None) == 'declare_arguments' for node in ast.walk(tree)):
        names |= {'params_file'} | set(LAUNCH_ONLY_ARGUMENTS) | set(parameter_arguments())
    return names


def console_scripts() -> set[str]:
    tree = parse(REPO_ROOT / 'setup.py')
    entry_points = keyword(calls(tree, 'setup')[0], 'entry_points')
    scripts = ast.literal_eval(entry_points)['console_scripts']
    return {line.split('=')[0].strip() for line in scripts}


def test_launch_files_exist_and_define_generate_launch_description():
    assert {p.name for p in LAUNCH_FILES} == {
        'stereo_derain.launch.py', 'stereo_derain_disparity.launch.py',
        'stereo_derain_two_heads.launch.py'}
    for path in LAUNCH_FILES:
        functions = {n.name for n in parse(path).body if isinstance(n, ast.FunctionDef)}
        assert 'generate_launch_description' in functions, path.name


@pytest.mark.parametrize('name', ['stereo_derain.launch.py', 'stereo_derain_disparity.launch.py'])
def test_arguments_come_from_the_one_table(name):
    tree = parse(LAUNCH_DIR / name)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == 'stereo_derain_ros.launch_arguments' for alias in node.names}
    assert 'declare_arguments' in imported
    literal = {c.args[0].value for c in calls(tree, 'DeclareLaunchArgument')
               if isinstance(c.args[0], ast.Constant)}
    # one default per argument: only arguments of this launch file alone are literal
    assert literal <= {'params_file', 'stereo_algorithm'}
    assert {'namespace', 'node_name', 'input_namespace', 'image_leaf', 'reliable_inputs',
            'use_sim_time'} <= set(LAUNCH_ONLY_ARGUMENTS)
    assert set(parameter_arguments()) == set(parameter_defaults())
    declared = declare_arguments(lambda name, **spec: (name, spec['default_value']), 'cfg.yaml')
    assert len(dict(declared)) == len(declared)
    assert dict(declared)['params_file'] == 'cfg.yaml' and dict(declared)['precision'] == ''


def test_only_given_arguments_override_the_params_file():
    assert parameter_overrides(dict.fromkeys(parameter_arguments(), '')) == {}
    given = {'precision': 'fp16', 'tile_size': '512', 'max_disparity': '96', 'threads': '2',
             'approximate_sync': 'true', 'approximate_sync_tolerance_seconds': '0.01',
             'model': '', 'use_sim_time': 'True'}
    assert parameter_overrides(given) == {
        'precision': 'fp16', 'tile_size': 512, 'max_disparity': 96, 'threads': 2,
        'approximate_sync': True, 'approximate_sync_tolerance_seconds': 0.01,
        'use_sim_time': True}
    with pytest.raises(ValueError, match="launch argument tile_size:='big' must be a int"):
        parameter_overrides({'tile_size': 'big'})
    with pytest.raises(ValueError, match='must be true or false'):
        parameter_overrides({'approximate_sync': 'maybe'})


def test_remappings_cover_every_node_input():
    remapped = dict(input_remappings('/front/stereo/', 'image_rect_color'))
    node_topics = set(INPUT_TOPICS) | {f'{t}/compressed' for t in INPUT_TOPICS if 'image' in t}
    assert set(remapped) == node_topics
    assert remapped['left/image_rect'] == '/front/stereo/left/image_rect_color'
    assert remapped['right/camera_info'] == '/front/stereo/right/camera_info'
    with pytest.raises(ValueError, match='image_leaf'):
        input_remappings('/stereo', 'image_color')


RELIABILITY_PROBE = '''
import rclpy
from rclpy.parameter import Parameter
from stereo_derain_ros.launch_arguments import input_remappings, reliable_input_overrides
from stereo_derain_ros.node import StereoDerainNode

rclpy.init()
overrides = reliable_input_overrides('/cam', 'image_rect', 'true')
remaps = [item for source, target in input_remappings('/cam', 'image_rect')
          for item in ('-r', f'{source}:={target}')]
node = StereoDerainNode(cli_args=['--ros-args', *remaps],
                        parameter_overrides=[Parameter(name, value=value) for name, value in
                                             {**overrides, 'enable': False}.items()])
for topic in ('/cam/left/image_rect', '/cam/right/camera_info'):
    (info,) = node.get_subscriptions_info_by_topic(topic)
    print(topic, info.qos_profile.reliability.name)
node.destroy_node()
rclpy.try_shutdown()
'''


def test_reliable_inputs_argument_makes_the_node_subscribe_reliably():
    # In a process of its own: node-local remappings given as cli_args disturbed DDS delivery
    # in later tests of the same process (test_replay lost its images).
    assert reliable_input_overrides('/cam', 'image_rect', '') == {}
    assert len(reliable_input_overrides('/cam', 'image_rect', 'true')) == 4
    result = subprocess.run([sys.executable, '-c', RELIABILITY_PROBE], capture_output=True,
                            text=True, timeout=120, cwd=REPO_ROOT,
                            env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['/cam/left/image_rect', 'RELIABLE',
                                     '/cam/right/camera_info', 'RELIABLE']


def test_two_heads_example_keeps_nodes_and_outputs_apart():
    tree = parse(LAUNCH_DIR / 'stereo_derain_two_heads.launch.py')
    heads = ast.literal_eval(next(
        n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
        and getattr(n.targets[0], 'id', '') == 'HEADS'))
    main_arguments = set(LAUNCH_ONLY_ARGUMENTS) | set(parameter_arguments())
    names, outputs, inputs = set(), set(), set()
    for arguments in heads.values():
        assert set(arguments) <= main_arguments
        names.add(f"/{arguments['namespace']}/{arguments['node_name']}")
        outputs.add(output_namespace(arguments, str(CONFIG)))
        inputs.add(arguments['input_namespace'])
    assert len(names) == len(outputs) == len(inputs) == len(heads) == 2
    assert outputs == {'/front/stereo_derained', '/rear/stereo_derained'}


def test_output_namespace_follows_argument_then_params_file(tmp_path):
    assert output_namespace({}, str(CONFIG)) == '/stereo_derained'
    assert output_namespace({'namespace': '/robot'}, str(CONFIG)) == '/robot/stereo_derained'
    assert output_namespace({'output_namespace': '/clean'}, str(CONFIG)) == '/clean'
    custom = tmp_path / 'params.yaml'
    custom.write_text('my_node:\n  ros__parameters:\n    output_namespace: dry\n')
    assert output_namespace({'node_name': 'my_node'}, str(custom)) == '/dry'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launch_configuration_used_is_declared(path):
    tree = parse(path)
    used = {c.args[0].value for c in calls(tree, 'LaunchConfiguration')
            if isinstance(c.args[0], ast.Constant)}
    assert used <= declared_arguments(tree) | {'params_file'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_executables_are_installed_entry_points(path):
    for node in calls(parse(path), 'Node'):
        assert keyword(node, 'package').value == 'stereo_derain_ros'
        assert keyword(node, 'executable').value in console_scripts()


def test_disparity_launch_includes_both_pipelines_with_valid_arguments():
    tree = parse(LAUNCH_DIR / 'stereo_derain_disparity.launch.py')
    packages = {'stereo_image_proc', 'stereo_derain_ros'}
    includes = {(packages & set(literal_strings(include.args[0]))).pop(): include
                for include in calls(tree, 'IncludeLaunchDescription')}
    assert set(includes) == {'stereo_image_proc', 'stereo_derain_ros'}
    assert 'stereo_derain.launch.py' in literal_strings(includes['stereo_derain_ros'].args[0])
    image_proc_arguments = keyword(includes['stereo_image_proc'], 'launch_arguments').func.value
    names = [k.value for k in image_proc_arguments.keys]
    assert set(names) <= STEREO_IMAGE_PROC_ARGUMENTS
    values = dict(zip(names, image_proc_arguments.values))
    assert values['launch_image_proc'].value == 'False'
    assert calls(values['namespace'], 'output_namespace')


def config_parameters() -> dict[str, object]:
    document = yaml.safe_load(CONFIG.read_text())
    (section,) = document.values()
    return section['ros__parameters']


def test_config_lists_every_parameter_with_its_default():
    assert config_parameters() == parameter_defaults()
    for name, value in config_parameters().items():
        assert type(value) is type(parameter_defaults()[name]), name


def test_node_accepts_the_config_file_and_declares_exactly_its_parameters(rclpy_context):
    from rclpy.parameter import parameter_dict_from_yaml_file, parameter_value_to_python

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


def test_docs_show_the_parameter_table():
    assert parameters_markdown() in (REPO_ROOT / 'docs' / 'node.md').read_text()

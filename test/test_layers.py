"""Layers import only the layers below them, and the lower three import no ROS.

docs/architecture.md: models < rain, data < engine < shells; the neutral modules at the package
root (pixels, stamps, atomic, image_codec, sgbm) import none of the layers.
"""

import ast

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / 'stereo_derain_ros'
NEUTRAL = {'pixels', 'stamps', 'atomic', 'image_codec', 'sgbm'}
# What each lower layer may import from the package (itself included).
ALLOWED = {
    'models': {'models'},
    'rain': {'rain'},
    'data': {'rain', 'data'},
    'engine': {'models', 'engine'},
    **{name: set() for name in NEUTRAL},
}
ROS_MODULES = ('rclpy', 'rosbags', 'launch', 'launch_ros')


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _layer(path) -> str | None:
    relative = path.relative_to(PACKAGE)
    layer = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    return layer if layer in ALLOWED else None


def test_lower_layers_import_only_downwards_and_no_ros():
    problems = []
    for path in sorted(PACKAGE.rglob('*.py')):
        layer = _layer(path)
        if layer is None:
            continue
        for module in _imports(path):
            parts = module.split('.')
            if parts[0] in ROS_MODULES:
                problems.append(f'{path.relative_to(REPO_ROOT)} imports {module} (ROS)')
            elif (parts[0] == 'stereo_derain_ros' and len(parts) > 1
                  and parts[1] not in ALLOWED[layer] | NEUTRAL):
                problems.append(f'{path.relative_to(REPO_ROOT)} imports {module} (upward)')
    assert not problems, '\n'.join(problems)

"""ROS Python style (99 columns, single quotes, pep257 docstrings), enforced with ruff."""

import ast
import subprocess

from conftest import REPO_ROOT, venv_bin


def test_ruff_clean():
    targets = ['stereo_derain_ros', 'test', 'launch', 'tools', 'setup.py']
    existing = [t for t in targets if (REPO_ROOT / t).exists()]
    result = subprocess.run(
        [venv_bin('ruff'), 'check', '--no-cache', *existing],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# Functions in other owners' files still over the limit (issue 15); each is split by its owner,
# who then removes it here (the test fails while a listed function is no longer long).
KNOWN_LONG_FUNCTIONS: set[str] = set()
MAX_FUNCTION_LINES = 60


def test_no_function_is_over_60_lines():
    long = set()
    for path in sorted((REPO_ROOT / 'stereo_derain_ros').rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES):
                long.add(f'{path.relative_to(REPO_ROOT).as_posix()}:{node.name}')
    too_long = sorted(long - KNOWN_LONG_FUNCTIONS)
    assert not too_long, f'over {MAX_FUNCTION_LINES} lines: {", ".join(too_long)}'
    now_short = sorted(KNOWN_LONG_FUNCTIONS - long)
    assert not now_short, f'now short, remove from KNOWN_LONG_FUNCTIONS: {", ".join(now_short)}'

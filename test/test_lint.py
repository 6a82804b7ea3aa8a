"""ROS Python style (99 columns, single quotes, pep257 docstrings), enforced with ruff."""

import subprocess

from conftest import REPO_ROOT, venv_bin


def test_ruff_clean():
    targets = ['stereo_derain_ros', 'test', 'launch', 'setup.py']
    existing = [t for t in targets if (REPO_ROOT / t).exists()]
    result = subprocess.run(
        [venv_bin('ruff'), 'check', '--no-cache', *existing],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

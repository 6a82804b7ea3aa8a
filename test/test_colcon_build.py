"""`colcon build` of the package in a fresh workspace installs what `ros2 run`/launch need."""

from importlib import metadata
import os
from pathlib import Path
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT, venv_bin

pytestmark = pytest.mark.slow

PACKAGE = 'stereo_derain_ros'


def package_sources() -> list[str]:
    """Files that a clone of the repository holds (tracked or untracked but not ignored)."""
    listed = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    return [path for path in listed if (REPO_ROOT / path).is_file()]


def console_scripts(site_packages: Path) -> list[str]:
    """Console scripts that colcon's build of setup.py declared, read from the install tree."""
    distribution = next(metadata.distributions(name=PACKAGE, path=[str(site_packages)]))
    return sorted(ep.name for ep in distribution.entry_points if ep.group == 'console_scripts')


@pytest.fixture(scope='module')
def colcon_install(tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp('ws')
    source = workspace / 'src' / PACKAGE
    for relative in package_sources():
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, target)
    env = dict(os.environ, PATH=f'{Path(venv_bin("colcon")).parent}:{os.environ["PATH"]}')
    result = subprocess.run(
        [venv_bin('colcon'), 'build', '--event-handlers', 'console_direct-'],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workspace / 'install' / PACKAGE


def test_install_tree_has_ament_marker_and_manifest(colcon_install):
    index = colcon_install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    assert index.is_file()
    assert (colcon_install / 'share' / PACKAGE / 'package.xml').is_file()


def test_install_tree_has_launch_and_config_files(colcon_install):
    share = colcon_install / 'share' / PACKAGE
    for folder, pattern in (('launch', '*.launch.py'), ('config', '*.yaml')):
        expected = sorted(p.name for p in (REPO_ROOT / folder).glob(pattern))
        installed = sorted(p.name for p in (share / folder).glob(pattern))
        assert installed == expected


def test_executables_are_where_ros2_run_looks(colcon_install):
    lib = colcon_install / 'lib' / PACKAGE
    site = next(colcon_install.glob('lib/python3*/site-packages'))
    names = console_scripts(site)
    assert 'stereo-derain' in names
    for name in names:
        assert os.access(lib / name, os.X_OK), f'{name} missing from {lib}'
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([str(lib / 'stereo-derain'), '--help'], env=env,
                            capture_output=True, text=True, cwd=colcon_install)
    assert result.returncode == 0, result.stderr
    assert 'subcommands' in result.stdout

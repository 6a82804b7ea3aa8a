"""The pip-installed `stereo-derain` tool is on the environment's PATH and lists its commands."""

import subprocess

from stereo_derain_ros.cli import SUBCOMMAND_MODULES

from conftest import venv_bin


def test_installed_cli_lists_subcommands():
    result = subprocess.run([venv_bin('stereo-derain'), '--help'], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMAND_MODULES:
        assert name.replace('_', '-') in result.stdout


def test_no_subcommand_prints_usage_and_fails():
    result = subprocess.run([venv_bin('stereo-derain')], capture_output=True, text=True)
    assert result.returncode == 2
    assert 'usage: stereo-derain' in result.stdout

"""The `stereo-derain` tool: installed on the PATH, every command described with its defaults."""

import argparse
import subprocess
import sys

from stereo_derain_ros.cli import build_parser, SUBCOMMAND_MODULES

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


def _commands(parser: argparse.ArgumentParser, name: str = 'stereo-derain'):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, subparser in action.choices.items():
                yield from _commands(subparser, f'{name} {command}')


def _lacks_shown_default(action: argparse.Action) -> bool:
    if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
        return False
    unset = action.default in (None, False, [], argparse.SUPPRESS)
    return not action.help or (not unset and 'default' not in action.help)


def test_every_command_has_a_description_and_shows_its_defaults():
    """`--help` of every (sub)command says what it does and what each option defaults to."""
    missing = []
    for name, parser in _commands(build_parser()):
        if not parser.description:
            missing.append(f'{name}: no description')
        missing += [f'{name} {action.option_strings or action.dest}: no help or no default shown'
                    for action in parser._actions if _lacks_shown_default(action)]
    assert not missing, '\n'.join(missing)


def test_help_does_not_import_torch():
    """Help texts quote the engine's defaults without the multi-second torch import."""
    code = ('import sys; from stereo_derain_ros.cli import build_parser; build_parser(); '
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.stdout.strip() == 'False', result.stderr

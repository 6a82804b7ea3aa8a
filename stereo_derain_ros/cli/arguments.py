"""Argument types shared by the subcommands, so that WxH means the same everywhere."""

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """Parse 'WxH' (e.g. 640x360) into (width, height), for argparse's `type=`."""
    parts = text.lower().split('x')
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(
            f'size must be WIDTHxHEIGHT with positive sides, e.g. 640x360, got {text!r}')
    return int(parts[0]), int(parts[1])


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """Parse a comma-separated list of sizes, e.g. 640x360,1280x720."""
    return [parse_size(item) for item in text.split(',')]

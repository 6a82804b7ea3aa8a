"""Rosbag2 workflows: offline deraining of recorded bags, synthetic rainy bags, replay over DDS.

This package is a shell layer (see docs/architecture.md): it reads and writes bags with
`rosbags`, hands numpy images to the engine and never touches torch devices itself. The entry
points are plain functions (`derain_bag`, `make_rain_bag`, `replay_bag`) so that the demo and
tests call them directly; the CLI subcommands are thin wrappers around them.
"""


class BagError(Exception):
    """A bag that cannot be processed as asked: missing topic, corrupt file, bad option."""

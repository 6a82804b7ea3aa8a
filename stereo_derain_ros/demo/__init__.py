"""The README's main command: the rainy demo bag through the real node, recorded and scored.

A shell layer (see docs/architecture.md) built from the other shells: `make_rain_bag` renders
the input, the node runs as its own process exactly as on a robot, `replay_bag` feeds it over
DDS, an rclpy recorder writes what it publishes to a bag, and the evaluation metrics score that
recording against the clean reference.
"""


class DemoError(Exception):
    """The demo cannot run as asked (no weights, node failed to start, nothing came out)."""

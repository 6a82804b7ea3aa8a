"""ROS time stamps as integer nanoseconds, the one unit the package computes with.

Works on any message-like object with `sec` and `nanosec` (rclpy messages and rosbags' typestore
messages alike), so neither ROS client library is imported here.
"""

from typing import Any

NS_PER_SECOND = 1_000_000_000


def stamp_ns(stamp: Any) -> int:
    """Return a `builtin_interfaces/Time` (or anything with sec and nanosec) in nanoseconds."""
    return int(stamp.sec) * NS_PER_SECOND + int(stamp.nanosec)


def header_stamp_ns(message: Any) -> int:
    """Return the header stamp of a stamped message in nanoseconds."""
    return stamp_ns(message.header.stamp)


def split_ns(stamp_ns_value: int) -> tuple[int, int]:
    """Return nanoseconds as the (sec, nanosec) pair a `Time` message holds."""
    return divmod(int(stamp_ns_value), NS_PER_SECOND)

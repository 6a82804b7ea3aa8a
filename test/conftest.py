"""Shared test set-up: every test session gets its own DDS domain, discovery on localhost only."""

import os
from pathlib import Path
import random
import sys

import pytest

from stereo_derain_ros.transport import large_image_environment

REPO_ROOT = Path(__file__).resolve().parent.parent

# Chosen before rclpy is imported anywhere so that parallel CI runs on one host cannot cross-talk.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ.setdefault('PYTHONUNBUFFERED', '1')
# Every process of the tests on the package's transport for large images, as the node runs it.
os.environ.update(large_image_environment())


def venv_bin(name: str) -> str:
    """Return the path of an executable installed beside the interpreter running the tests."""
    return str(Path(sys.executable).parent / name)


@pytest.fixture
def rclpy_context():
    """Yield a fresh rclpy context, shut down after the test even when it fails."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


@pytest.fixture(scope='session')
def small_onnx(tmp_path_factory):
    """Export the small test bandnet (16 px band) to ONNX once per session; yield the path."""
    pytest.importorskip('onnxruntime')
    from small_models import small_bandnet

    from stereo_derain_ros.engine.onnx_export import export_onnx

    path = tmp_path_factory.mktemp('onnx') / 'small_bandnet.onnx'
    return export_onnx(small_bandnet(), path, max_disparity=16)

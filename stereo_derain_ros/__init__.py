"""GPU stereo image deraining for ROS 2 (models, rain synthesis, engine, node and tools)."""

__version__ = '0.1.0'

"""The package's DDS transport settings for large images, applied unless the user has their own.

With Fast DDS defaults, images of a few megabytes between processes on one host leave the small
shared-memory segment and are mostly lost when received best effort. `fastdds_large_images.xml`
enlarges the segment; it must be in force in every process on the image path, so the node, the
launch files, `bench node` and the demo all take it from here. A user's own Fast DDS profile
(`FASTRTPS_DEFAULT_PROFILES_FILE` already set) or another middleware is left untouched.
"""

from collections.abc import Mapping
import os
from pathlib import Path

FASTDDS_PROFILE = Path(__file__).with_name('fastdds_large_images.xml')
PROFILE_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'
FASTDDS_RMW = 'rmw_fastrtps_cpp'


def large_image_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Return the variables to add so that Fast DDS uses the large-image profile (maybe none)."""
    if environ.get(PROFILE_VARIABLE) or environ.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        return {}
    if environ.get('RMW_IMPLEMENTATION', FASTDDS_RMW) != FASTDDS_RMW:
        return {}
    return {PROFILE_VARIABLE: str(FASTDDS_PROFILE)}


def apply_large_image_profile() -> str | None:
    """Put the profile into this process's environment (before rclpy.init); return its path."""
    added = large_image_environment()
    os.environ.update(added)
    return added.get(PROFILE_VARIABLE)

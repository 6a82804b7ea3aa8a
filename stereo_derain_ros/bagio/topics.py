"""Topic naming rules shared by the bag tools, following image_transport and stereo_image_proc.

stereo_image_proc finds a camera's calibration on the `camera_info` topic that is the sibling
of the image topic, and compressed images live on `<image topic>/compressed`. Derained output is
placed in a new namespace with the same leaf names so that
`stereo_image_proc.launch.py namespace:=<output namespace>` consumes it without remapping.
"""

import posixpath

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)

COMPRESSED_SUFFIX = '/compressed'


def base_image_topic(topic: str) -> str:
    """Return the raw image topic a (possibly `/compressed`) transport topic belongs to."""
    if topic.endswith(COMPRESSED_SUFFIX):
        return topic[:-len(COMPRESSED_SUFFIX)]
    return topic


def camera_info_topic(image_topic: str) -> str:
    """Return the sibling `camera_info` topic of an image topic (image_transport's rule)."""
    return posixpath.join(posixpath.dirname(base_image_topic(image_topic)), 'camera_info')


def common_namespace(left_topic: str, right_topic: str) -> str:
    """Return the longest namespace (ending with '/') that both image topics live in."""
    left_parts = left_topic.strip('/').split('/')[:-1]
    right_parts = right_topic.strip('/').split('/')[:-1]
    shared = []
    for left_part, right_part in zip(left_parts, right_parts):
        if left_part != right_part:
            break
        shared.append(left_part)
    return '/' + ''.join(part + '/' for part in shared)


def output_topic(topic: str, input_namespace: str, output_namespace: str) -> str:
    """Move `topic` from `input_namespace` (as from `common_namespace`) to `output_namespace`."""
    if not topic.startswith(input_namespace):
        raise ValueError(f'topic {topic!r} is not inside namespace {input_namespace!r}')
    relative = topic[len(input_namespace):]
    return '/' + posixpath.join(output_namespace.strip('/'), relative).lstrip('/')

"""`make-bag` renders a real bag that reads back with rosbags with a correct calibration."""

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores

from stereo_derain_ros.bagio import BagError
from stereo_derain_ros.bagio.synthetic import make_rain_bag, RainBagConfig
from stereo_derain_ros.image_codec import image_to_numpy
from stereo_derain_ros.rain.scene import MOTORCYCLE_BASELINE_M

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
SIDES = ('left', 'right')


def read_messages(path):
    messages = {}
    with Reader(path) as reader:
        for connection, timestamp, raw in reader.messages():
            message = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            messages.setdefault(connection.topic, []).append((timestamp, message))
    return messages


def stamp(message) -> int:
    return message.header.stamp.sec * 10**9 + message.header.stamp.nanosec


@pytest.fixture(scope='module')
def small_bag(tmp_path_factory):
    output = tmp_path_factory.mktemp('make_bag') / 'rainy'
    calibration = make_rain_bag(RainBagConfig(
        output=output, duration_s=0.3, rate_hz=10, width=48, height=32, preset='heavy', seed=3,
        clock=True))
    return output, calibration, read_messages(output)


def test_topics_counts_and_shared_stamps(small_bag):
    _, _, messages = small_bag
    image_topics = [f'/{ns}/{side}/{leaf}' for ns in ('stereo', 'stereo_clean') for side in SIDES
                    for leaf in ('image_rect', 'camera_info')]
    assert sorted(messages) == sorted(image_topics + ['/clock'])
    assert all(len(messages[topic]) == 3 for topic in messages)
    for index in range(3):
        stamps = {stamp(messages[topic][index][1]) for topic in image_topics}
        receive = {messages[topic][index][0] for topic in image_topics}
        assert len(stamps) == 1 and stamps == receive
    periods = np.diff([t for t, _ in messages['/stereo/left/image_rect']])
    assert list(periods) == [100_000_000, 100_000_000]
    clock = messages['/clock'][1][1].clock
    assert clock.sec * 10**9 + clock.nanosec == messages['/stereo/left/image_rect'][1][0]


def test_camera_info_is_a_rectified_stereo_calibration(small_bag):
    _, calibration, messages = small_bag
    left = messages['/stereo/left/camera_info'][0][1]
    right = messages['/stereo/right/camera_info'][0][1]
    assert (left.width, left.height) == (48, 32)
    assert left.header.frame_id == 'stereo_left_optical_frame'
    assert right.header.frame_id == 'stereo_right_optical_frame'
    for info in (left, right):
        np.testing.assert_array_equal(info.r, np.eye(3).reshape(-1))
        np.testing.assert_array_equal(info.d, np.zeros(5))
        assert info.p[0] == info.p[5] == info.k[0] == info.k[4] == calibration.focal_px
    assert left.p[3] == 0.0
    assert -right.p[3] / right.p[0] == pytest.approx(MOTORCYCLE_BASELINE_M)
    # Middlebury's doffs is the principal-point offset: Z = f B / (d + doffs) needs it.
    assert right.p[2] - left.p[2] == pytest.approx(calibration.doffs_px)
    clean_right = messages['/stereo_clean/right/camera_info'][0][1]
    np.testing.assert_array_equal(clean_right.p, right.p)
    np.testing.assert_array_equal(clean_right.k, right.k)


def test_rain_moves_between_frames_over_a_fixed_clean_scene(small_bag):
    _, _, messages = small_bag
    rainy = [image_to_numpy(m)[0] for _, m in messages['/stereo/left/image_rect']]
    clean = [image_to_numpy(m)[0] for _, m in messages['/stereo_clean/left/image_rect']]
    assert rainy[0].shape == (32, 48, 3) and rainy[0].dtype == np.uint8
    assert messages['/stereo/left/image_rect'][0][1].encoding == 'rgb8'
    np.testing.assert_array_equal(clean[0], clean[2])
    assert not np.array_equal(rainy[0], clean[0])
    assert not np.array_equal(rainy[0], rainy[1])


def test_same_seed_same_bag_and_output_is_atomic(small_bag, tmp_path):
    first, _, messages = small_bag
    config = {'output': tmp_path / 'again', 'duration_s': 0.3, 'rate_hz': 10, 'width': 48,
              'height': 32, 'preset': 'heavy', 'seed': 3, 'storage': 'sqlite3'}
    make_rain_bag(RainBagConfig(**config))
    again = read_messages(tmp_path / 'again')
    for a, b in zip(messages['/stereo/right/image_rect'], again['/stereo/right/image_rect']):
        np.testing.assert_array_equal(a[1].data, b[1].data)
    with pytest.raises(BagError, match='exists already'):
        make_rain_bag(RainBagConfig(**config))

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_rain_bag(RainBagConfig(**{**config, 'output': tmp_path / 'cut'}), interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['again']


def test_cli_rejects_bad_options(tmp_path, capsys):
    from stereo_derain_ros.cli import main

    assert main(['make-bag', str(tmp_path / 'x'), '--preset', 'drizzle', '--size', '16x16']) == 2
    assert 'unknown rain preset' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['make-bag', str(tmp_path / 'x'), '--size', '640by360'])
    assert 'WIDTHxHEIGHT' in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()

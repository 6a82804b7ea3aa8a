"""Offline bag deraining on real bags written by rosbags (MCAP and sqlite3)."""

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from stereo_bag_fixtures import (
    BagSpec,
    BEST_EFFORT,
    frame_pixels,
    read_all,
    stamp_ns,
    tree_digest,
    TYPESTORE,
    write_stereo_bag,
)

from stereo_derain_ros.bagio import BagError
from stereo_derain_ros.bagio.derain import BagDerainConfig, derain_bag
from stereo_derain_ros.bagio.pairing import LEFT, RIGHT, StereoPairer
from stereo_derain_ros.bagio.topics import camera_info_topic, common_namespace, output_topic
from stereo_derain_ros.image_codec import decode_compressed, image_to_numpy

LEFT_TOPIC, RIGHT_TOPIC = '/stereo/left/image_rect', '/stereo/right/image_rect'


def invert_batch(lefts, rights, channel_order):
    """Stand in for a derainer with a transformation the output can be checked against."""
    assert channel_order == 'rgb'
    return [255 - image for image in lefts], [255 - image for image in rights]


def config(tmp_path: Path, **overrides) -> BagDerainConfig:
    fields = {'input': tmp_path / 'rainy', 'output': tmp_path / 'derained',
              'topics': (LEFT_TOPIC, RIGHT_TOPIC), 'batch_size': 2}
    fields.update(overrides)
    return BagDerainConfig(**fields)


def decoded(raw: bytes, msgtype: str):
    message = TYPESTORE.deserialize_cdr(raw, msgtype)
    if msgtype.endswith('CompressedImage'):
        return message, decode_compressed(message.format, message.data)[0]
    return message, image_to_numpy(message)[0]


def test_topic_rules_follow_image_transport():
    assert camera_info_topic('/stereo/left/image_rect') == '/stereo/left/camera_info'
    assert camera_info_topic('/stereo/left/image_rect/compressed') == '/stereo/left/camera_info'
    assert common_namespace('/stereo/left/image_rect', '/stereo/right/image_rect') == '/stereo/'
    assert common_namespace('/cam_l/image', '/cam_r/image') == '/'
    assert output_topic('/stereo/left/image_rect', '/stereo/', '/stereo_derained') == (
        '/stereo_derained/left/image_rect')
    assert output_topic('/cam_l/image', '/', 'out') == '/out/cam_l/image'


def test_pairer_matches_by_stamp_in_any_order_and_gives_up_on_dropped_frames():
    pairer = StereoPairer(window=2)
    assert pairer.add(RIGHT, 10, 'r10') == ([], [])
    assert pairer.add(LEFT, 10, 'l10') == ([('l10', 'r10')], [])
    assert pairer.add(LEFT, 20, 'l20') == ([], [])
    assert pairer.add(RIGHT, 30, 'r30') == ([], [])
    assert pairer.add(RIGHT, 40, 'r40') == ([], [])
    assert pairer.add(RIGHT, 50, 'r50') == ([], ['l20'])
    assert pairer.finish() == ['r30', 'r40', 'r50']


def test_pairer_tolerance_picks_the_nearest_stamp():
    pairer = StereoPairer(tolerance_ns=5)
    pairer.add(LEFT, 100, 'a')
    pairer.add(LEFT, 104, 'b')
    assert pairer.add(RIGHT, 103, 'r') == ([('b', 'r')], [])
    assert pairer.add(RIGHT, 200, 's') == ([], [])
    assert StereoPairer().add(RIGHT, 101, 'x') == ([], [])


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_round_trip_copies_everything_and_adds_derained_topics(tmp_path, storage):
    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=5, storage=storage))
    before = tree_digest(tmp_path / 'rainy')
    progress = []
    summary = derain_bag(config(tmp_path), invert_batch,
                         progress=lambda done, total: progress.append((done, total)))

    assert summary.pairs == 5 and summary.unpaired == [0, 0]
    assert progress[-1] == (5, 5)
    assert tree_digest(tmp_path / 'rainy') == before
    source, output = read_all(tmp_path / 'rainy'), read_all(tmp_path / 'derained')
    for topic, messages in source.items():
        assert sorted(output[topic]) == sorted(messages), topic
    assert set(output) - set(source) == {
        '/stereo_derained/left/image_rect', '/stereo_derained/right/image_rect',
        '/stereo_derained/left/camera_info', '/stereo_derained/right/camera_info'}
    for side_index, side in enumerate(('left', 'right')):
        derained = sorted(output[f'/stereo_derained/{side}/image_rect'])
        rainy = sorted(source[f'/stereo/{side}/image_rect'])
        assert [t for t, _ in derained] == [t for t, _ in rainy]
        for index, ((_, raw), (_, rainy_raw)) in enumerate(zip(derained, rainy)):
            message, pixels = decoded(raw, 'sensor_msgs/msg/Image')
            rainy_message = TYPESTORE.deserialize_cdr(rainy_raw, 'sensor_msgs/msg/Image')
            assert message.header == rainy_message.header
            assert message.header.stamp.sec * 10**9 + message.header.stamp.nanosec == (
                stamp_ns(index))
            np.testing.assert_array_equal(pixels, 255 - frame_pixels(index, side_index))
        assert sorted(output[f'/stereo_derained/{side}/camera_info']) == sorted(
            source[f'/stereo/{side}/camera_info'])

    metadata = (tmp_path / 'derained' / 'metadata.yaml').read_text()
    assert 'storage_identifier: mcap' in metadata and 'version: 9' in metadata
    with Reader(tmp_path / 'derained') as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert qos['/stereo/left/image_rect'] == [BEST_EFFORT]
    assert qos['/stereo_derained/left/image_rect'] == [BEST_EFFORT]
    assert qos['/stereo_derained/right/camera_info'] == [BEST_EFFORT]
    assert not list(tmp_path.glob('*.partial-*'))


def test_replace_puts_derained_images_on_the_input_topics(tmp_path):
    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=3))
    derain_bag(config(tmp_path, replace=True, storage='sqlite3'), invert_batch)

    source, output = read_all(tmp_path / 'rainy'), read_all(tmp_path / 'derained')
    assert set(output) == set(source)
    for topic in ('/chatter', '/stereo/left/camera_info', '/stereo/right/camera_info'):
        assert sorted(output[topic]) == sorted(source[topic])
    for side_index, side in enumerate(('left', 'right')):
        messages = sorted(output[f'/stereo/{side}/image_rect'])
        rainy = sorted(source[f'/stereo/{side}/image_rect'])
        assert [t for t, _ in messages] == [t for t, _ in rainy]
        for index, (_, raw) in enumerate(messages):
            np.testing.assert_array_equal(decoded(raw, 'sensor_msgs/msg/Image')[1],
                                          255 - frame_pixels(index, side_index))
    assert 'storage_identifier: sqlite3' in (tmp_path / 'derained' / 'metadata.yaml').read_text()


def test_bgra8_images_are_derained_in_colour_and_written_back_with_opaque_alpha(tmp_path):
    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=2, encoding='bgra8'))
    orders = []

    def invert_bgr(lefts, rights, channel_order):
        orders.append(channel_order)
        assert all(image.shape == (*frame_pixels(0, 0).shape[:2], 3) for image in lefts)
        return [255 - image for image in lefts], [255 - image for image in rights]

    derain_bag(config(tmp_path), invert_bgr)
    assert orders and set(orders) == {'bgr'}
    output = read_all(tmp_path / 'derained')
    for side_index, side in enumerate(('left', 'right')):
        for index, (_, raw) in enumerate(sorted(output[f'/stereo_derained/{side}/image_rect'])):
            message = TYPESTORE.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
            assert message.encoding == 'bgra8' and message.step == message.width * 4
            pixels = message.data.reshape(message.height, message.width, 4)
            np.testing.assert_array_equal(pixels[:, :, :3],
                                          255 - frame_pixels(index, side_index)[:, :, ::-1])
            assert (pixels[:, :, 3] == 255).all()


def test_compressed_topics_are_derained_into_the_same_format(tmp_path):
    spec = BagSpec(frames=3, compressed_format='rgb8; png compressed rgb8')
    write_stereo_bag(tmp_path / 'rainy', spec)
    derain_bag(config(tmp_path, topics=('/stereo/left/image_rect/compressed',
                                        '/stereo/right/image_rect/compressed')), invert_batch)

    output = read_all(tmp_path / 'derained')
    assert len(output['/stereo_derained/left/camera_info']) == 3
    for side_index, side in enumerate(('left', 'right')):
        messages = sorted(output[f'/stereo_derained/{side}/image_rect/compressed'])
        assert len(messages) == 3
        for index, (_, raw) in enumerate(messages):
            message, pixels = decoded(raw, 'sensor_msgs/msg/CompressedImage')
            assert message.format == 'rgb8; png compressed rgb8'
            np.testing.assert_array_equal(pixels, 255 - frame_pixels(index, side_index))


def test_unpaired_frames_are_reported_and_copied(tmp_path):
    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=4, drop_right=(1,)))
    summary = derain_bag(config(tmp_path, replace=True), invert_batch)

    assert summary.pairs == 3 and summary.unpaired == [1, 0]
    left = sorted(read_all(tmp_path / 'derained')['/stereo/left/image_rect'])
    assert len(left) == 4
    np.testing.assert_array_equal(decoded(left[1][1], 'sensor_msgs/msg/Image')[1],
                                  frame_pixels(1, 0))


def test_keyboard_interrupt_leaves_no_output_and_the_input_untouched(tmp_path):
    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=6))
    before = tree_digest(tmp_path / 'rainy')

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        derain_bag(config(tmp_path), invert_batch, progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['rainy']
    assert tree_digest(tmp_path / 'rainy') == before


def test_corrupt_message_mid_bag_is_skipped_and_reported(tmp_path):
    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=6, corrupt_left=(3,)))
    before = tree_digest(tmp_path / 'rainy')
    summary = derain_bag(config(tmp_path), invert_batch)
    assert (summary.pairs, summary.unpaired) == (5, [0, 1])
    assert len(summary.skipped) == 1
    assert '/stereo/left/image_rect at receive time' in summary.skipped[0]
    assert len(read_all(tmp_path / 'derained')['/stereo_derained/left/image_rect']) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ['derained', 'rainy']
    assert tree_digest(tmp_path / 'rainy') == before


def test_missing_topic_lists_the_image_topics(tmp_path):
    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=1))
    with pytest.raises(BagError) as error:
        derain_bag(config(tmp_path, topics=('/camera/left/image_raw', RIGHT_TOPIC)), invert_batch)
    message = str(error.value)
    assert '/camera/left/image_raw is not in the bag' in message
    assert '/stereo/left/image_rect (Image, 1 msgs)' in message
    assert '/stereo/right/image_rect (Image, 1 msgs)' in message
    assert '/chatter' not in message
    assert not (tmp_path / 'derained').exists()


@pytest.mark.parametrize('damage', ['metadata', 'storage'])
def test_corrupt_bag_gives_a_clear_error(tmp_path, damage):
    bag = write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=2))
    if damage == 'metadata':
        (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: [not: valid')
    else:
        storage_file = next(bag.glob('*.mcap'))
        storage_file.write_bytes(storage_file.read_bytes()[:200])
    with pytest.raises(BagError, match='corrupt'):
        derain_bag(config(tmp_path), invert_batch)
    assert not (tmp_path / 'derained').exists()


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=2))
    (tmp_path / 'derained').mkdir()
    with pytest.raises(BagError, match='exists already.*--overwrite'):
        derain_bag(config(tmp_path), invert_batch)
    with pytest.raises(BagError, match='is the input bag'):
        derain_bag(config(tmp_path, output=tmp_path / 'rainy', overwrite=True), invert_batch)
    derain_bag(config(tmp_path, overwrite=True), invert_batch)
    assert len(read_all(tmp_path / 'derained')['/stereo_derained/left/image_rect']) == 2


@pytest.mark.slow
def test_cli_derains_with_the_real_engine(tmp_path, capsys):
    from stereo_derain_ros.cli import main

    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=3))
    status = main(['bag', str(tmp_path / 'rainy'), str(tmp_path / 'derained'),
                   '--left', LEFT_TOPIC, '--right', RIGHT_TOPIC, '--untrained', '--device', 'cpu',
                   '--storage', 'sqlite3'])
    assert status == 0
    assert '3 pairs derained' in capsys.readouterr().out
    output = read_all(tmp_path / 'derained')
    for side in ('left', 'right'):
        messages = output[f'/stereo_derained/{side}/image_rect']
        assert len(messages) == 3
        message, pixels = decoded(messages[0][1], 'sensor_msgs/msg/Image')
        assert pixels.shape == frame_pixels(0, 0).shape and message.encoding == 'rgb8'


def test_cli_reports_a_missing_topic_in_one_line(tmp_path, capsys):
    from stereo_derain_ros.cli import main

    write_stereo_bag(tmp_path / 'rainy', BagSpec(frames=1))
    status = main(['bag', str(tmp_path / 'rainy'), str(tmp_path / 'derained'),
                   '--left', '/left', '--right', RIGHT_TOPIC, '--untrained'])
    error = capsys.readouterr().err
    assert status == 2
    assert error.count('\n') == 1 and '/stereo/left/image_rect (Image' in error

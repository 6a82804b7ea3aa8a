"""The neutral helpers every layer shares: pixel scaling, stamps and atomic writes."""

import numpy as np
import pytest
import torch

from stereo_derain_ros.atomic import atomic_path, write_text_atomic
from stereo_derain_ros.pixels import as_uint8, chw_unit_tensor, to_uint8, to_unit_float
from stereo_derain_ros.stamps import header_stamp_ns, split_ns, stamp_ns


class _Time:
    def __init__(self, sec: int, nanosec: int) -> None:
        self.sec, self.nanosec = sec, nanosec


def test_uint8_float_round_trip_is_exact_for_numpy_and_torch():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    floats = to_unit_float(image)
    assert floats.dtype == np.float32 and floats.max() == 1.0
    assert np.array_equal(to_uint8(floats), image)
    tensor = torch.from_numpy(image)
    assert torch.equal(to_uint8(to_unit_float(tensor)), tensor)


def test_to_uint8_clips_and_rounds_to_nearest():
    values = np.array([-0.5, 0.5 / 255, 0.49 / 255, 1.7], dtype=np.float32)
    assert to_uint8(values).tolist() == [0, 1, 0, 255]
    assert to_uint8(torch.from_numpy(values)).tolist() == [0, 1, 0, 255]


def test_as_uint8_keeps_8_bit_images_and_rounds_floats():
    image = np.array([[0, 7, 255]], dtype=np.uint8)
    assert as_uint8(image) is image
    assert as_uint8(np.array([[0.0, 7.4 / 255, 1.2]], np.float32)).tolist() == [[0, 7, 255]]


def test_chw_unit_tensor_moves_channels_first():
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[..., 2] = 255
    tensor = chw_unit_tensor(image[:, ::-1])
    assert tensor.shape == (3, 4, 5) and tensor.dtype == torch.float32
    assert tensor[2].min() == 1.0 and tensor[:2].max() == 0.0


def test_stamps_round_trip_through_nanoseconds():
    assert stamp_ns(_Time(12, 345)) == 12_000_000_345
    assert split_ns(12_000_000_345) == (12, 345)

    class _Message:
        class header:  # noqa: N801 - mimics a ROS message field
            stamp = _Time(1, 2)

    assert header_stamp_ns(_Message) == 1_000_000_002


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path):
    path = tmp_path / 'sub' / 'result.json'
    write_text_atomic(path, 'old')
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text('half')
        raise RuntimeError('writer failed')
    assert path.read_text() == 'old'
    assert sorted(item.name for item in path.parent.iterdir()) == ['result.json']
    write_text_atomic(path, 'new')
    assert path.read_text() == 'new'

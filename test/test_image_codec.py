"""The image codec reads and writes every supported encoding, padded rows and byte orders."""

import array

import cv2
import numpy as np
import pytest

from stereo_derain_ros.image_codec import (
    decode_compressed,
    decode_image,
    encode_image,
    encoding_for,
    fill_image,
    image_to_numpy,
    ImageCodecError,
    SUPPORTED_ENCODINGS,
    UnsupportedEncoding,
)

HEIGHT, WIDTH = 6, 5


def sample(encoding: str, seed: int = 0) -> np.ndarray:
    info = SUPPORTED_ENCODINGS[encoding]
    shape = (HEIGHT, WIDTH) if info.channels == 1 else (HEIGHT, WIDTH, info.channels)
    high = 256 if info.dtype == np.uint8 else 65536
    return np.random.default_rng(seed).integers(0, high, shape).astype(info.dtype)


@pytest.mark.parametrize('encoding', sorted(SUPPORTED_ENCODINGS))
def test_round_trip_every_encoding(encoding):
    image = sample(encoding)
    step, data = encode_image(image, encoding)
    info = SUPPORTED_ENCODINGS[encoding]
    assert step == WIDTH * info.stored_channels * info.dtype.itemsize
    assert isinstance(data, array.array) and data.typecode == 'B'
    assert len(data) == step * HEIGHT
    decoded, order = decode_image(HEIGHT, WIDTH, encoding, step, 0, data)
    assert order == info.channel_order
    assert decoded.dtype == info.dtype and decoded.shape == image.shape
    np.testing.assert_array_equal(decoded, image)


@pytest.mark.parametrize('encoding', [name for name, info in sorted(SUPPORTED_ENCODINGS.items())
                                      if info.channels > 1])
def test_channel_planes_encode_like_the_interleaved_image(encoding):
    # Engines return H x W x C views of C x H x W tensors; encoding merges their planes.
    image = sample(encoding, seed=3)
    planar = np.ascontiguousarray(image.transpose(2, 0, 1)).transpose(1, 2, 0)
    assert not planar.flags.c_contiguous
    assert encode_image(planar, encoding) == encode_image(image, encoding)
    sliced = np.ascontiguousarray(image[:, ::-1])[:, ::-1]
    assert encode_image(sliced, encoding) == encode_image(image, encoding)


def test_decode_is_a_view_of_the_message_buffer():
    image = sample('rgb8')
    step, data = encode_image(image, 'rgb8')
    decoded, _ = decode_image(HEIGHT, WIDTH, 'rgb8', step, 0, data)
    data[0] = (int(data[0]) + 1) % 256
    assert decoded[0, 0, 0] == data[0]


@pytest.mark.parametrize('encoding', ['rgb8', 'mono8', 'mono16', 'bgr16', 'bgra8', 'rgba16'])
def test_padded_rows_are_read_not_rejected(encoding):
    info = SUPPORTED_ENCODINGS[encoding]
    image = sample(encoding, seed=3)
    if info.alpha:
        image = np.dstack([image, sample('mono16' if info.dtype == np.uint16 else 'mono8')])
    row_bytes = WIDTH * info.stored_channels * info.dtype.itemsize
    padding = 7
    padded = np.full((HEIGHT, row_bytes + padding), 0xAB, np.uint8)
    padded[:, :row_bytes] = image.astype(info.dtype.newbyteorder('<')).reshape(
        HEIGHT, -1).view(np.uint8)
    data = array.array('B', padded.tobytes())
    decoded, _ = decode_image(HEIGHT, WIDTH, encoding, row_bytes + padding, 0, data)
    np.testing.assert_array_equal(decoded, image[:, :, :info.channels] if info.alpha else image)


@pytest.mark.parametrize('encoding', ['bgra8', 'rgba8', 'bgra16', 'rgba16'])
def test_alpha_is_left_out_of_the_view_and_written_back_opaque(encoding):
    # Cameras such as the ZED send bgra8; the models take colour only.
    info = SUPPORTED_ENCODINGS[encoding]
    colour = sample(encoding, seed=4)
    translucent = np.dstack([colour, np.full((HEIGHT, WIDTH), 7, info.dtype)])
    step, data = encode_image(translucent, encoding)
    assert step == WIDTH * 4 * info.dtype.itemsize
    decoded, order = decode_image(HEIGHT, WIDTH, encoding, step, 0, data)
    assert order == info.channel_order and decoded.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(decoded, colour)
    assert np.shares_memory(decoded, np.frombuffer(data, np.uint8)), 'decoding copied'
    step, data = encode_image(decoded, encoding)
    written = np.frombuffer(data, info.dtype).reshape(HEIGHT, WIDTH, 4)
    np.testing.assert_array_equal(written[:, :, :3], colour)
    assert (written[:, :, 3] == np.iinfo(info.dtype).max).all()


def test_encodings_chosen_for_arrays_have_no_alpha():
    # A compressed input's derained image is published raw in one of these.
    assert encoding_for('bgr', np.uint8) == 'bgr8'
    assert encoding_for('rgb', np.uint16) == 'rgb16'


def test_big_endian_16_bit_is_swapped_to_native():
    image = sample('mono16', seed=5)
    data = image.astype('>u2').tobytes()
    decoded, order = decode_image(HEIGHT, WIDTH, 'mono16', WIDTH * 2, 1, data)
    assert order == 'mono'
    assert decoded.dtype == np.uint16 and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, image)


def test_rosbags_style_numpy_data_is_accepted():
    image = sample('bgr8', seed=2)
    step, data = encode_image(image, 'bgr8')
    decoded, order = decode_image(HEIGHT, WIDTH, 'bgr8', step, False,
                                  np.frombuffer(data, np.uint8).copy())
    assert order == 'bgr'
    np.testing.assert_array_equal(decoded, image)


def test_unsupported_encoding_names_it_and_the_supported_list():
    with pytest.raises(UnsupportedEncoding) as error:
        decode_image(2, 2, 'yuv422', 4, 0, bytes(8))
    message = str(error.value)
    assert "'yuv422'" in message
    for name in SUPPORTED_ENCODINGS:
        assert name in message


def test_data_shorter_than_step_times_height_is_an_error():
    with pytest.raises(ImageCodecError, match=r'shorter than step x height = 15 x 6 = 90'):
        decode_image(HEIGHT, WIDTH, 'rgb8', 15, 0, bytes(89))


def test_step_smaller_than_a_row_is_an_error():
    with pytest.raises(ImageCodecError, match='step 14 is smaller'):
        decode_image(HEIGHT, WIDTH, 'rgb8', 14, 0, bytes(14 * HEIGHT))


@pytest.mark.parametrize('height, width', [(0, 5), (6, 0), (0, 0)])
def test_zero_sized_image_is_an_error(height, width):
    with pytest.raises(ImageCodecError, match='zero-sized image'):
        decode_image(height, width, 'mono8', width, 0, b'')


def test_encode_rejects_wrong_dtype_and_shape():
    with pytest.raises(ImageCodecError, match='expected uint8'):
        encode_image(np.zeros((2, 2, 3), np.uint16), 'rgb8')
    with pytest.raises(ImageCodecError, match='expected H x W x 3'):
        encode_image(np.zeros((2, 2), np.uint8), 'bgr8')
    with pytest.raises(ImageCodecError, match='expected H x W x 3 or H x W x 4'):
        encode_image(np.zeros((2, 2, 2), np.uint8), 'bgra8')
    with pytest.raises(UnsupportedEncoding):
        encode_image(np.zeros((2, 2), np.float32), '32FC1')


def test_message_helpers_work_on_rclpy_images():
    from sensor_msgs.msg import Image

    image = sample('mono16', seed=9)
    message = Image()
    message.header.frame_id = 'cam'
    fill_image(message, image, 'mono16')
    assert (message.height, message.width, message.step) == (HEIGHT, WIDTH, WIDTH * 2)
    assert message.header.frame_id == 'cam'
    decoded, order = image_to_numpy(message)
    assert order == 'mono'
    np.testing.assert_array_equal(decoded, image)


def test_compressed_png_and_jpeg_decode():
    bgr = sample('bgr8', seed=4)
    ok, png = cv2.imencode('.png', bgr)
    assert ok
    decoded, order = decode_compressed('png', png.tobytes())
    assert order == 'bgr'
    np.testing.assert_array_equal(decoded, bgr)

    decoded, order = decode_compressed('rgb8; png compressed bgr8', png.tobytes())
    assert order == 'rgb'
    np.testing.assert_array_equal(decoded, bgr[:, :, ::-1])

    mono16 = sample('mono16', seed=6)
    ok, png16 = cv2.imencode('.png', mono16)
    decoded, order = decode_compressed('png', np.frombuffer(png16, np.uint8))
    assert order == 'mono' and decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, mono16)

    flat = np.full((16, 16, 3), 120, np.uint8)
    ok, jpeg = cv2.imencode('.jpg', flat)
    decoded, order = decode_compressed('jpeg', jpeg.tobytes())
    assert order == 'bgr' and decoded.shape == (16, 16, 3)
    assert np.abs(decoded.astype(int) - 120).max() <= 2


def test_compressed_errors_are_clear():
    with pytest.raises(UnsupportedEncoding, match='compressedDepth'):
        decode_compressed('16UC1; compressedDepth', b'1234')
    with pytest.raises(ImageCodecError, match='has no data'):
        decode_compressed('jpeg', b'')
    with pytest.raises(ImageCodecError, match='could not be decoded as png'):
        decode_compressed('png', b'not an image at all')


@pytest.mark.parametrize('format_', ['png', 'rgb8; png compressed rgb8'])
def test_encode_compressed_png_round_trips_exactly(format_):
    from stereo_derain_ros.image_codec import decode_compressed, encode_compressed

    image = np.random.default_rng(3).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    order = 'rgb' if format_.startswith('rgb') else 'bgr'
    decoded, decoded_order = decode_compressed(format_, encode_compressed(image, order, format_))
    assert decoded_order == order
    np.testing.assert_array_equal(decoded, image)


def test_encode_compressed_rejects_unknown_format():
    from stereo_derain_ros.image_codec import encode_compressed, UnsupportedEncoding

    with pytest.raises(UnsupportedEncoding, match='tiff'):
        encode_compressed(np.zeros((2, 2, 3), np.uint8), 'bgr', 'tiff')

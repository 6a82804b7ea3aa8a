"""Offline deraining of a recorded stereo bag into a new bag.

Three stages overlap so that the engine is never waiting on disk: a reader thread deserialises
and pairs images and queues every message to be copied; the calling thread runs the engine on
batches of pairs; a writer thread serialises and writes. Queues between them are bounded, so
memory stays at a few batches whatever the bag size. The writer thread owns the rosbags
`Writer` outright because its sqlite3 storage may only be used from the thread that opened it.

Messages are written in the order they are read except derained images, which follow their
batch; both rosbag2 storages index by receive timestamp, so readers still see time order.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
import queue
import threading
import time
from typing import Any

import numpy as np

from stereo_derain_ros.bagio import BagError
from stereo_derain_ros.bagio.atomic import (
    atomic_bag_directory,
    check_output_path,
    remove_stale_partials,
)
from stereo_derain_ros.bagio.pairing import LEFT, RIGHT, StereoPairer
from stereo_derain_ros.bagio.reading import (
    add_connection_like,
    connection_for,
    open_bag,
    typestore,
)
from stereo_derain_ros.bagio.topics import (
    camera_info_topic,
    common_namespace,
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPES,
    output_topic,
)
from stereo_derain_ros.image_codec import (
    decode_compressed,
    decode_image,
    encode_compressed,
    encode_image,
    ImageCodecError,
)

STORAGES = ('mcap', 'sqlite3')

# `derain_batch(lefts, rights, channel_order=...) -> (lefts, rights)`, as the engine's.
DerainBatch = Callable[..., tuple[Sequence[np.ndarray], Sequence[np.ndarray]]]

# Called after every batch with (pairs done, pairs expected).
Progress = Callable[[int, int], None]


@dataclass
class BagDerainConfig:
    """What to derain and where to put it; see `stereo-derain bag --help` for each field."""

    input: Path
    output: Path
    # (left, right), indexed by pairing.LEFT/RIGHT; a None camera_info topic is found by name.
    topics: tuple[str, str]
    info_topics: tuple[str | None, str | None] = (None, None)
    output_namespace: str = '/stereo_derained'
    replace: bool = False
    storage: str = 'mcap'
    batch_size: int = 4
    stamp_tolerance_s: float = 0.0
    overwrite: bool = False
    queued_batches: int = 2

    def __post_init__(self) -> None:
        self.input, self.output = Path(self.input), Path(self.output)
        if self.storage not in STORAGES:
            raise BagError(f'unknown storage {self.storage!r}; expected one of {STORAGES}')
        if self.batch_size < 1:
            raise BagError(f'batch size must be at least 1, got {self.batch_size}')
        if self.stamp_tolerance_s < 0:
            raise BagError(f'stamp tolerance must be >= 0 s, got {self.stamp_tolerance_s}')
        if self.topics[LEFT] == self.topics[RIGHT]:
            raise BagError(f'left and right topics are the same ({self.topics[LEFT]})')
        if not self.replace and not self.output_namespace.strip('/'):
            raise BagError('the output namespace must not be empty (or pass --replace)')


@dataclass
class BagDerainSummary:
    """What a run did, for the user and for tests."""

    pairs: int = 0
    unpaired: list[int] = field(default_factory=lambda: [0, 0])
    messages_copied: int = 0
    seconds: float = 0.0
    output_topics: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Frame:
    """One image read from the bag: its message, pixels, and where it came from."""

    connection_id: int
    timestamp: int
    raw: bytes
    message: Any
    pixels: np.ndarray
    channel_order: str


@dataclass
class _Plan:
    """Input connections resolved before any thread starts."""

    image_ids: tuple[int, int]
    info_ids: tuple[int | None, int | None]
    image_type: str
    derived_topics: dict[str, str]
    expected_pairs: int


class _StopRequestedError(Exception):
    """Another stage failed or the run was interrupted: leave quietly."""


class _UnusableImageError(Exception):
    """One image message cannot be decoded: it is skipped and reported, the run goes on."""


_END = object()


def derain_bag(config: BagDerainConfig, derain_batch: DerainBatch,
               progress: Progress | None = None) -> BagDerainSummary:
    """Derain every left/right pair of `config.input` into the new bag `config.output`.

    The output holds every input connection and message byte for byte (same receive
    timestamps and QoS), plus the derained images and camera_info under the output namespace,
    or with the derained images in place of the inputs when `config.replace` is set. Nothing
    exists at `config.output` unless the run completed.
    """
    check_output_path(config.output, config.overwrite, inputs=(config.input,))
    plan = _make_plan(config)
    summary = BagDerainSummary(output_topics=dict(plan.derived_topics))
    summary.notes += [f'removed {path}, left by a run that was killed'
                      for path in remove_stale_partials(config.output)]
    if plan.info_ids[LEFT] is None or plan.info_ids[RIGHT] is None:
        summary.notes.append('no camera_info topic next to the images: none written')
    started = time.monotonic()
    with atomic_bag_directory(config.output, config.overwrite) as temporary:
        _Pipeline(config, plan, derain_batch, progress, summary).run(temporary)
    summary.seconds = time.monotonic() - started
    return summary


def check_bag_derain(config: BagDerainConfig) -> None:
    """Raise `BagError` now for what `derain_bag` would reject, before an engine is built."""
    check_output_path(config.output, config.overwrite, inputs=(config.input,))
    _make_plan(config)


def _make_plan(config: BagDerainConfig) -> _Plan:
    with open_bag(config.input) as reader:
        images = tuple(connection_for(reader, topic, f'{side} image')
                       for topic, side in zip(config.topics, ('left', 'right')))
        for connection in images:
            if connection.msgtype not in IMAGE_TYPES:
                raise BagError(f'topic {connection.topic} has type {connection.msgtype}; '
                               f'expected one of {", ".join(IMAGE_TYPES)}')
        if images[LEFT].msgtype != images[RIGHT].msgtype:
            raise BagError(f'left topic is {images[LEFT].msgtype} but right topic is '
                           f'{images[RIGHT].msgtype}; expected the same type')
        infos = tuple(_info_connection(reader, explicit, image.topic)
                      for explicit, image in zip(config.info_topics, images))
        namespace = common_namespace(*config.topics)
        derived = {}
        for side, name in ((LEFT, 'left'), (RIGHT, 'right')):
            image_topic = images[side].topic
            if not config.replace:
                image_topic = output_topic(image_topic, namespace, config.output_namespace)
            derived[f'{name}_image'] = image_topic
            if not config.replace and infos[side] is not None:
                derived[f'{name}_info'] = camera_info_topic(image_topic)
        taken = {c.topic for c in reader.connections}
        clashes = sorted(t for t in derived.values() if t in taken) if not config.replace else []
        if clashes:
            raise BagError(f'output topics {", ".join(clashes)} already exist in the input bag; '
                           'choose another --output-namespace')
        return _Plan(
            image_ids=(images[LEFT].id, images[RIGHT].id),
            info_ids=tuple(c.id if c is not None else None for c in infos),
            image_type=images[LEFT].msgtype,
            derived_topics=derived,
            expected_pairs=min(images[LEFT].msgcount, images[RIGHT].msgcount))


def _info_connection(reader, explicit: str | None, image_topic: str):
    if explicit:
        return connection_for(reader, explicit, 'camera_info')
    sibling = camera_info_topic(image_topic)
    matches = [c for c in reader.connections if c.topic == sibling]
    return matches[0] if len(matches) == 1 else None


class _Pipeline:
    """The three overlapping stages of one run, with shared failure handling."""

    def __init__(self, config: BagDerainConfig, plan: _Plan, derain_batch: DerainBatch,
                 progress: Progress | None, summary: BagDerainSummary) -> None:
        self.config = config
        self.plan = plan
        self.derain_batch = derain_batch
        self.progress = progress
        self.summary = summary
        self.batches: queue.Queue = queue.Queue(maxsize=config.queued_batches)
        self.writes: queue.Queue = queue.Queue(maxsize=256)
        self.stop = threading.Event()
        self.failures: list[BaseException] = []

    def run(self, temporary: Path) -> None:
        threads = [threading.Thread(target=self._guarded, args=(self._read,), daemon=True,
                                    name='bag-reader'),
                   threading.Thread(target=self._guarded, args=(self._write, temporary),
                                    daemon=True, name='bag-writer')]
        for thread in threads:
            thread.start()
        try:
            self._infer()
        except _StopRequestedError:
            pass
        except BaseException as error:
            self.failures.insert(0, error)
            self.stop.set()
        finally:
            for thread in threads:
                thread.join()
        if self.failures:
            raise self.failures[0]

    def _guarded(self, stage: Callable, *args) -> None:
        try:
            stage(*args)
        except _StopRequestedError:
            pass
        except BaseException as error:
            self.failures.append(error)
            self.stop.set()

    def _put(self, target: queue.Queue, item) -> None:
        while True:
            if self.stop.is_set():
                raise _StopRequestedError
            try:
                target.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, source: queue.Queue):
        while True:
            if self.stop.is_set():
                raise _StopRequestedError
            try:
                return source.get(timeout=0.1)
            except queue.Empty:
                continue

    def _read(self) -> None:
        replace = self.config.replace
        pairer: StereoPairer[_Frame] = StereoPairer(
            tolerance_ns=round(self.config.stamp_tolerance_s * 1e9))
        batch: list[tuple[_Frame, _Frame]] = []
        sides = {self.plan.image_ids[LEFT]: LEFT, self.plan.image_ids[RIGHT]: RIGHT}
        info_keys = {self.plan.info_ids[LEFT]: 'left_info',
                     self.plan.info_ids[RIGHT]: 'right_info'}
        with open_bag(self.config.input) as reader:
            messages = reader.messages()
            while True:
                try:
                    connection, timestamp, raw = next(messages)
                except StopIteration:
                    break
                except Exception as error:
                    raise BagError(f'cannot read bag {self.config.input}: it looks corrupt '
                                   f'({type(error).__name__}: {error})') from None
                side = sides.get(connection.id)
                if side is None:
                    self._put(self.writes, (connection.id, timestamp, raw))
                    self.summary.messages_copied += 1
                    if not replace and connection.id in info_keys:
                        self._put(self.writes, (info_keys[connection.id], timestamp, raw))
                    continue
                if not replace:
                    self._put(self.writes, (connection.id, timestamp, raw))
                    self.summary.messages_copied += 1
                try:
                    frame = self._decode(connection, timestamp, raw)
                except _UnusableImageError as error:
                    self._skip([(connection.id, timestamp, raw)], str(error))
                    continue
                pairs, unpaired = pairer.add(side, _stamp_ns(frame.message), frame)
                self._give_up(unpaired, sides)
                for pair in pairs:
                    batch = self._add_to_batch(batch, pair)
            self._give_up(pairer.finish(), sides)
        if batch:
            self._put(self.batches, batch)
        self._put(self.batches, _END)

    def _decode(self, connection, timestamp: int, raw: bytes) -> _Frame:
        try:
            message = typestore().deserialize_cdr(raw, connection.msgtype)
            if connection.msgtype == COMPRESSED_IMAGE_TYPE:
                pixels, order = decode_compressed(message.format, message.data)
            else:
                pixels, order = decode_image(message.height, message.width, message.encoding,
                                             message.step, message.is_bigendian, message.data)
        except ImageCodecError as error:
            raise _UnusableImageError(f'{connection.topic} at receive time {timestamp} ns: '
                                      f'{error}') from None
        except Exception as error:  # noqa: BLE001 - any deserialisation failure: corrupt CDR
            raise _UnusableImageError(
                f'{connection.topic} at receive time {timestamp} ns: cannot deserialise the '
                f'{connection.msgtype} message ({type(error).__name__}: {error})') from None
        return _Frame(connection.id, timestamp, raw, message, pixels, order)

    def _give_up(self, frames: list[_Frame], sides: dict[int, int]) -> None:
        for frame in frames:
            self.summary.unpaired[sides[frame.connection_id]] += 1
            self._keep_unchanged(frame.connection_id, frame.timestamp, frame.raw)

    def _skip(self, messages: list[tuple[int, int, bytes]], reason: str) -> None:
        """Leave images that cannot be derained as they were, and say why."""
        self.summary.skipped.append(reason)
        for message in messages:
            self._keep_unchanged(*message)

    def _keep_unchanged(self, connection_id: int, timestamp: int, raw: bytes) -> None:
        """Copy an input image that gets no derained version (already copied unless replace)."""
        if self.config.replace:
            self._put(self.writes, (connection_id, timestamp, raw))
            self.summary.messages_copied += 1

    def _add_to_batch(self, batch: list, pair: tuple[_Frame, _Frame]) -> list:
        left, right = pair
        if _image_kind(left) != _image_kind(right):
            self._skip([(frame.connection_id, frame.timestamp, frame.raw) for frame in pair],
                       f'pair at stamp {_stamp_ns(left.message)} ns: left image is '
                       f'{_image_kind(left)} but right image is {_image_kind(right)}; expected '
                       'the same size and encoding')
            return batch
        if batch and _batch_key(batch[0]) != _batch_key(pair):
            self._put(self.batches, batch)
            batch = []
        batch.append(pair)
        if len(batch) >= self.config.batch_size:
            self._put(self.batches, batch)
            batch = []
        return batch

    def _infer(self) -> None:
        replace = self.config.replace
        image_keys = (self.plan.image_ids if replace else ('left_image', 'right_image'))
        while True:
            batch = self._get(self.batches)
            if batch is _END:
                break
            lefts, rights = self.derain_batch(
                [left.pixels for left, _ in batch], [right.pixels for _, right in batch],
                channel_order=batch[0][0].channel_order)
            for (left, right), clean_left, clean_right in zip(batch, lefts, rights):
                for key, frame, pixels in ((image_keys[LEFT], left, clean_left),
                                           (image_keys[RIGHT], right, clean_right)):
                    self._put(self.writes, (key, frame.timestamp,
                                            _Derained(frame, np.asarray(pixels))))
            self.summary.pairs += len(batch)
            if self.progress is not None:
                self.progress(self.summary.pairs, self.plan.expected_pairs)
        self._put(self.writes, _END)

    def _write(self, temporary: Path) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if self.config.storage == 'mcap' else StoragePlugin.SQLITE3
        with open_bag(self.config.input) as reader:
            inputs = {c.id: c for c in reader.connections}
        with Writer(temporary, version=9, storage_plugin=plugin) as writer:
            outputs: dict = {cid: add_connection_like(writer, c) for cid, c in inputs.items()}
            sources = {'left_image': self.plan.image_ids[LEFT],
                       'right_image': self.plan.image_ids[RIGHT],
                       'left_info': self.plan.info_ids[LEFT],
                       'right_info': self.plan.info_ids[RIGHT]}
            if not self.config.replace:
                for key, topic in self.plan.derived_topics.items():
                    outputs[key] = add_connection_like(writer, inputs[sources[key]], topic)
            while True:
                item = self._get(self.writes)
                if item is _END:
                    break
                key, timestamp, data = item
                if isinstance(data, _Derained):
                    data = data.serialize()
                writer.write(outputs[key], timestamp, data)
                if self.stop.is_set():
                    raise _StopRequestedError


@dataclass
class _Derained:
    """A derained image waiting to be serialised (in the writer thread, off the engine's)."""

    source: _Frame
    pixels: np.ndarray

    def serialize(self) -> memoryview:
        message = self.source.message
        store = typestore()
        if message.__msgtype__ == COMPRESSED_IMAGE_TYPE:
            data = encode_compressed(self.pixels, self.source.channel_order, message.format)
            output = store.types[COMPRESSED_IMAGE_TYPE](
                header=message.header, format=message.format,
                data=np.frombuffer(data, dtype=np.uint8))
        else:
            step, data = encode_image(self.pixels, message.encoding)
            output = store.types[message.__msgtype__](
                header=message.header, height=self.pixels.shape[0], width=self.pixels.shape[1],
                encoding=message.encoding, is_bigendian=0, step=step,
                data=np.frombuffer(data, dtype=np.uint8))
        return store.serialize_cdr(output, message.__msgtype__)


def _stamp_ns(message) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def _image_kind(frame: _Frame) -> str:
    """Describe what must match between the two views: size, channel order and depth."""
    return f'{"x".join(map(str, frame.pixels.shape))} {frame.channel_order} {frame.pixels.dtype}'


def _batch_key(pair: tuple[_Frame, _Frame]) -> tuple:
    left, right = pair
    return (left.pixels.shape, right.pixels.shape, left.pixels.dtype, left.channel_order)

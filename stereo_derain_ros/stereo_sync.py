"""A small stereo synchronizer: left/right images and camera_infos paired by header stamp.

message_filters is not installable from PyPI, and its Python synchronizers queue every complete
set for the callback. A deraining node only ever wants the newest set: anything older is stale by
the time inference is free. So this synchronizer keeps bounded per-input queues, pairs the two
images by exact stamp (or within a tolerance on request, as stereo_image_proc's
`approximate_sync` does), attaches the camera_infos whose stamps match, and holds a single
pending set that newer sets replace. It knows nothing about ROS: messages are opaque objects and
stamps are integer nanoseconds, so it is unit-tested with plain objects.

camera_info is matched per set, never guessed from timing: a set whose images are paired waits
up to `camera_info_timeout_seconds` for its infos (they may come before or after the images, in
any order). Only when that wait runs out (`expire`) does the set go out without them; that side
is then marked as not sending infos, so later sets do not wait until an info arrives again.
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
import enum
import threading
import time
from typing import Any

LEFT_IMAGE, LEFT_INFO, RIGHT_IMAGE, RIGHT_INFO = range(4)
INPUT_NAMES = ('left image', 'left camera_info', 'right image', 'right camera_info')
INFO_OF_IMAGE = {LEFT_IMAGE: LEFT_INFO, RIGHT_IMAGE: RIGHT_INFO}


class AddResult(enum.Enum):
    """What adding one message did to the synchronizer."""

    STORED = 'stored'
    COMPLETED = 'completed'
    STALE = 'stale'
    RESET = 'reset'


@dataclass(frozen=True)
class SyncConfig:
    """Matching policy; names follow stereo_image_proc's parameters."""

    queue_size: int = 5
    approximate_sync: bool = False
    approximate_sync_tolerance_seconds: float = 0.0
    camera_info_timeout_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f'queue_size must be at least 1, got {self.queue_size}')
        if self.approximate_sync_tolerance_seconds < 0.0:
            raise ValueError('approximate_sync_tolerance_seconds must be >= 0, got '
                             f'{self.approximate_sync_tolerance_seconds}')
        if self.camera_info_timeout_seconds < 0.0:
            raise ValueError('camera_info_timeout_seconds must be >= 0, got '
                             f'{self.camera_info_timeout_seconds}')


@dataclass(frozen=True)
class StereoSet:
    """One synchronized stereo set; an info is None when it did not come within the timeout."""

    left_image: Any
    left_info: Any | None
    right_image: Any
    right_info: Any | None
    stamp_ns: int
    completed_at: float


@dataclass(frozen=True)
class SyncCounters:
    """Totals since start, for diagnostics and warnings.

    `superseded`: complete sets replaced by a newer one before processing took them (newest
    wins); `abandoned`: image pairs replaced while still waiting for their camera_info;
    `unmatched`: messages per input that left their queue without ever joining a set.
    """

    received: tuple[int, int, int, int]
    completed: int
    superseded: int
    abandoned: int
    resets: int
    stale: int
    unmatched: tuple[int, int, int, int]
    last_stamps: tuple[int | None, int | None, int | None, int | None]
    info_timed_out: bool


@dataclass
class _ImagePair:
    """Two images paired by stamp, waiting for their camera_infos (the wait began at `since`)."""

    stamps: dict[int, int]
    messages: dict[int, Any]
    since: float


class StereoSynchronizer:
    """Pair four inputs by stamp and keep only the newest complete set.

    Thread-safe: subscription callbacks call `add` from any thread while the processing side
    calls `expire` and `take`. A stamp older than the previous one on the same input (a bag
    loop, a restarted driver, `ros2 bag play` seeking) clears all queues, so sets never mix the
    two timelines.
    """

    def __init__(self, config: SyncConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._queues: list[OrderedDict[int, Any]] = [OrderedDict() for _ in range(4)]
        self._last_stamp: list[int | None] = [None] * 4
        self._info_missing = {LEFT_INFO: False, RIGHT_INFO: False}
        self._waiting: _ImagePair | None = None
        self._newest_set_stamp: int | None = None
        self._pending: StereoSet | None = None
        self._received = [0, 0, 0, 0]
        self._unmatched = [0, 0, 0, 0]
        self._completed = self._superseded = self._abandoned = 0
        self._resets = self._stale = 0

    @property
    def config(self) -> SyncConfig:
        return self._config

    def add(self, index: int, stamp_ns: int, message: Any) -> AddResult:
        """Store one message for input `index` (LEFT_IMAGE ... RIGHT_INFO) and try to match."""
        if index not in range(4):
            raise ValueError(f'input index must be 0-3 (LEFT_IMAGE ... RIGHT_INFO), got {index}')
        with self._lock:
            self._received[index] += 1
            result = AddResult.STORED
            last = self._last_stamp[index]
            if last is not None and stamp_ns < last:
                self._reset_locked()
                result = AddResult.RESET
            self._last_stamp[index] = stamp_ns
            if index in self._info_missing:
                self._info_missing[index] = False
            if (result is AddResult.STORED and not self._config.approximate_sync
                    and self._newest_set_stamp is not None and stamp_ns <= self._newest_set_stamp):
                self._stale += 1
                self._unmatched[index] += 1
                return AddResult.STALE
            self._store_locked(index, stamp_ns, message)
            if index in INFO_OF_IMAGE:
                self._pair_images_locked()
            if self._complete_locked(expired=self._config.camera_info_timeout_seconds == 0.0):
                return AddResult.COMPLETED
            return result

    def expire(self) -> bool:
        """Send out a pair that waited its whole timeout for camera_info; True if one went."""
        with self._lock:
            waiting = self._waiting
            if waiting is None or (
                    self._clock() - waiting.since < self._config.camera_info_timeout_seconds):
                return False
            return self._complete_locked(expired=True)

    def take(self) -> StereoSet | None:
        """Return the pending set (and forget it), or None when no new set is ready."""
        with self._lock:
            pending, self._pending = self._pending, None
            return pending

    def has_pending(self) -> bool:
        with self._lock:
            return self._pending is not None

    def counters(self) -> SyncCounters:
        with self._lock:
            return SyncCounters(
                tuple(self._received), self._completed, self._superseded, self._abandoned,
                self._resets, self._stale, tuple(self._unmatched), tuple(self._last_stamp),
                any(self._info_missing.values()))

    def missing_inputs(self) -> list[str]:
        """Name the inputs that have never delivered a message."""
        with self._lock:
            return [INPUT_NAMES[i] for i in range(4) if self._received[i] == 0]

    # -- under the lock -------------------------------------------------------------------------

    def _store_locked(self, index: int, stamp_ns: int, message: Any) -> None:
        queue = self._queues[index]
        queue[stamp_ns] = message
        queue.move_to_end(stamp_ns)
        while len(queue) > self._config.queue_size:
            queue.popitem(last=False)
            self._unmatched[index] += 1

    def _reset_locked(self) -> None:
        for queue in self._queues:
            queue.clear()
        self._last_stamp = [None] * 4
        self._newest_set_stamp = None
        self._pending = None
        self._waiting = None
        self._resets += 1

    def _pair_images_locked(self) -> None:
        """Pair the newest matching images; the pair replaces an older one still waiting."""
        if not self._queues[LEFT_IMAGE] or not self._queues[RIGHT_IMAGE]:
            return
        stamps = (self._pair_approximate() if self._config.approximate_sync
                  else self._pair_exact())
        if stamps is None:
            return
        if self._newest_set_stamp is not None and stamps[LEFT_IMAGE] <= self._newest_set_stamp:
            return
        since = self._clock()
        if self._waiting is not None:
            # The wait runs from the first pair without infos, or a steady stream would wait
            # forever when camera_info never comes.
            since = self._waiting.since
            self._abandoned += 1
        messages = {index: self._queues[index][stamp] for index, stamp in stamps.items()}
        for index, stamp in stamps.items():
            self._discard_up_to_locked(index, stamp)
        self._waiting = _ImagePair(stamps, messages, since)

    def _pair_exact(self) -> dict[int, int] | None:
        common = set(self._queues[LEFT_IMAGE]) & set(self._queues[RIGHT_IMAGE])
        if not common:
            return None
        stamp = max(common)
        return {LEFT_IMAGE: stamp, RIGHT_IMAGE: stamp}

    def _pair_approximate(self) -> dict[int, int] | None:
        tolerance_ns = round(self._config.approximate_sync_tolerance_seconds * 1e9)
        for left_stamp in sorted(self._queues[LEFT_IMAGE], reverse=True):
            right_stamp = min(self._queues[RIGHT_IMAGE], key=lambda s: abs(s - left_stamp))
            if tolerance_ns == 0 or abs(right_stamp - left_stamp) <= tolerance_ns:
                return {LEFT_IMAGE: left_stamp, RIGHT_IMAGE: right_stamp}
        return None

    def _matching_info(self, image_index: int, image_stamp: int) -> int | None:
        """Return the stamp of the camera_info that belongs to this image, if it is here."""
        queue = self._queues[INFO_OF_IMAGE[image_index]]
        if not self._config.approximate_sync:
            return image_stamp if image_stamp in queue else None
        if not queue:
            return None
        nearest = min(queue, key=lambda s: abs(s - image_stamp))
        distance = abs(nearest - image_stamp)
        tolerance_ns = round(self._config.approximate_sync_tolerance_seconds * 1e9)
        if tolerance_ns:
            return nearest if distance <= tolerance_ns else None
        previous = self._newest_set_stamp
        # Unbounded: the nearest info, unless it is nearer to the previous set than to this one.
        return nearest if previous is None or distance < abs(nearest - previous) else None

    def _complete_locked(self, expired: bool) -> bool:
        """Complete the waiting pair with its infos, or without the missing ones if `expired`."""
        waiting = self._waiting
        if waiting is None:
            return False
        info_stamps = {}
        for image_index, info_index in INFO_OF_IMAGE.items():
            stamp = self._matching_info(image_index, waiting.stamps[image_index])
            if stamp is not None:
                info_stamps[info_index] = stamp
            elif not (expired or self._info_missing[info_index]):
                return False
            else:
                self._info_missing[info_index] = True
        infos = {index: self._queues[index][stamp] for index, stamp in info_stamps.items()}
        for index, stamp in info_stamps.items():
            self._discard_up_to_locked(index, stamp)
        if self._pending is not None:
            self._superseded += 1
        stamp_ns = waiting.stamps[LEFT_IMAGE]
        self._pending = StereoSet(waiting.messages[LEFT_IMAGE], infos.get(LEFT_INFO),
                                  waiting.messages[RIGHT_IMAGE], infos.get(RIGHT_INFO),
                                  stamp_ns, self._clock())
        self._waiting = None
        self._newest_set_stamp = stamp_ns
        self._completed += 1
        return True

    def _discard_up_to_locked(self, index: int, used: int) -> None:
        """Drop the used message and everything older on that input (they can never match)."""
        queue = self._queues[index]
        for stamp in [s for s in queue if s <= used]:
            del queue[stamp]
            if stamp != used:
                self._unmatched[index] += 1

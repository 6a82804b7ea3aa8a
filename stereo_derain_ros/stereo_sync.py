"""A small stereo synchronizer: left/right images and camera_infos paired by header stamp.

message_filters is not installable from PyPI, and its Python synchronizers queue every complete
set for the callback. A deraining node only ever wants the newest set: anything older is stale by
the time inference is free. So this synchronizer keeps bounded per-input queues, completes sets by
exact stamp (or within a tolerance on request, as stereo_image_proc's `approximate_sync` does),
and holds a single pending set that newer sets replace. It knows nothing about ROS: messages are
opaque objects and stamps are integer nanoseconds, so it is unit-tested with plain objects.
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
    """One synchronized stereo set; the infos are None when camera_info is not arriving."""

    left_image: Any
    left_info: Any | None
    right_image: Any
    right_info: Any | None
    stamp_ns: int
    completed_at: float


@dataclass(frozen=True)
class SyncCounters:
    """Totals since start, for diagnostics and warnings."""

    received: tuple[int, int, int, int]
    completed: int
    dropped: int
    resets: int
    stale: int
    info_timed_out: bool


class StereoSynchronizer:
    """Pair four inputs by stamp and keep only the newest complete set.

    Thread-safe: subscription callbacks call `add` from any thread while the processing timer
    calls `take`. When a set completes while an earlier one is still pending, the earlier one is
    counted as dropped. A stamp older than the previous one on the same input (a bag loop, a
    restarted driver, `ros2 bag play` seeking) clears all queues, so sets never mix the two
    timelines. If no camera_info has arrived on a side for `camera_info_timeout_seconds` while
    images keep arriving, image pairs are completed without infos rather than not at all.
    """

    def __init__(self, config: SyncConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._queues: list[OrderedDict[int, Any]] = [OrderedDict() for _ in range(4)]
        self._last_stamp: list[int | None] = [None] * 4
        # Per camera_info input: when the first image arrived since that input's last info.
        self._image_since_info: dict[int, float | None] = {LEFT_INFO: None, RIGHT_INFO: None}
        self._newest_set_stamp: int | None = None
        self._pending: StereoSet | None = None
        self._received = [0, 0, 0, 0]
        self._completed = 0
        self._dropped = 0
        self._resets = 0
        self._stale = 0

    @property
    def config(self) -> SyncConfig:
        return self._config

    def add(self, index: int, stamp_ns: int, message: Any) -> AddResult:
        """Store one message for input `index` (LEFT_IMAGE ... RIGHT_INFO) and try to match."""
        if index not in range(4):
            raise ValueError(f'input index must be 0-3 (LEFT_IMAGE ... RIGHT_INFO), got {index}')
        now = self._clock()
        with self._lock:
            self._received[index] += 1
            if index in self._image_since_info:
                self._image_since_info[index] = None
            else:
                for info_index, since in self._image_since_info.items():
                    if since is None:
                        self._image_since_info[info_index] = now
            result = AddResult.STORED
            last = self._last_stamp[index]
            if last is not None and stamp_ns < last:
                self._reset_locked()
                result = AddResult.RESET
            self._last_stamp[index] = stamp_ns
            if (result is AddResult.STORED and not self._config.approximate_sync
                    and self._newest_set_stamp is not None and stamp_ns <= self._newest_set_stamp):
                self._stale += 1
                return AddResult.STALE
            queue = self._queues[index]
            queue[stamp_ns] = message
            queue.move_to_end(stamp_ns)
            while len(queue) > self._config.queue_size:
                queue.popitem(last=False)
            if self._match_locked(now):
                return AddResult.COMPLETED
            return result

    def take(self) -> StereoSet | None:
        """Return the pending set (and forget it), or None when no new set is ready."""
        with self._lock:
            pending, self._pending = self._pending, None
            return pending

    def counters(self) -> SyncCounters:
        with self._lock:
            now = self._clock()
            return SyncCounters(
                tuple(self._received), self._completed, self._dropped, self._resets, self._stale,
                any(self._info_absent_locked(i, now) for i in (LEFT_INFO, RIGHT_INFO)))

    def missing_inputs(self) -> list[str]:
        """Name the inputs that have never delivered a message."""
        with self._lock:
            return [INPUT_NAMES[i] for i in range(4) if self._received[i] == 0]

    def _reset_locked(self) -> None:
        for queue in self._queues:
            queue.clear()
        self._last_stamp = [None] * 4
        self._newest_set_stamp = None
        self._pending = None
        self._resets += 1

    def _info_absent_locked(self, index: int, now: float) -> bool:
        """Images have kept arriving for longer than the timeout without this camera_info.

        Measured from the first image after the last info, not from the last info itself, so a
        slow camera (sets further apart than the timeout) is not mistaken for a missing info.
        """
        since = self._image_since_info[index]
        return since is not None and now - since > self._config.camera_info_timeout_seconds

    def _match_locked(self, now: float) -> bool:
        required = [LEFT_IMAGE, RIGHT_IMAGE] + [
            i for i in (LEFT_INFO, RIGHT_INFO) if not self._info_absent_locked(i, now)]
        if any(not self._queues[i] for i in required):
            return False
        chosen = (self._match_approximate(required) if self._config.approximate_sync
                  else self._match_exact(required))
        if chosen is None:
            return False
        stamp_ns = chosen[LEFT_IMAGE]
        if self._newest_set_stamp is not None and stamp_ns <= self._newest_set_stamp:
            return False
        messages = {i: self._queues[i][chosen[i]] for i in required}
        for index, used in chosen.items():
            queue = self._queues[index]
            for stamp in [s for s in queue if s <= used]:
                del queue[stamp]
        if self._pending is not None:
            self._dropped += 1
        self._pending = StereoSet(messages[LEFT_IMAGE], messages.get(LEFT_INFO),
                                  messages[RIGHT_IMAGE], messages.get(RIGHT_INFO), stamp_ns, now)
        self._newest_set_stamp = stamp_ns
        self._completed += 1
        return True

    def _match_exact(self, required: list[int]) -> dict[int, int] | None:
        common = set(self._queues[required[0]])
        for index in required[1:]:
            common &= set(self._queues[index])
        if not common:
            return None
        stamp = max(common)
        return dict.fromkeys(required, stamp)

    def _match_approximate(self, required: list[int]) -> dict[int, int] | None:
        tolerance_ns = round(self._config.approximate_sync_tolerance_seconds * 1e9)
        for left_stamp in sorted(self._queues[LEFT_IMAGE], reverse=True):
            chosen = {LEFT_IMAGE: left_stamp}
            for index in required:
                if index != LEFT_IMAGE:
                    chosen[index] = min(self._queues[index], key=lambda s: abs(s - left_stamp))
            spread = max(chosen.values()) - min(chosen.values())
            if tolerance_ns == 0 or spread <= tolerance_ns:
                return chosen
        return None

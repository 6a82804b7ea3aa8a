"""Streaming left/right pairing by header stamp, as stereo_image_proc's ExactTime sync does.

Bags store messages in receive order, and the two cameras' images of one exposure can arrive
in either order with other messages between them. Each side keeps a short FIFO of images
waiting for their partner; an image that has waited while `window` images of the other side
went by without a match will not be paired (a dropped frame) and is reported as unpaired.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar('Item')

LEFT = 0
RIGHT = 1


@dataclass
class _Waiting(Generic[Item]):
    stamp_ns: int
    item: Item
    others_seen_at_arrival: int


@dataclass
class StereoPairer(Generic[Item]):
    """Match left and right items whose header stamps are equal (or within `tolerance_ns`)."""

    tolerance_ns: int = 0
    window: int = 30
    _waiting: tuple[deque, deque] = field(default_factory=lambda: (deque(), deque()))
    _seen: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, side: int, stamp_ns: int, item: Item
            ) -> tuple[list[tuple[Item, Item]], list[Item]]:
        """Add one image; return `(pairs as (left, right), items given up as unpaired)`."""
        other = 1 - side
        self._seen[side] += 1
        pairs: list[tuple[Item, Item]] = []
        match = self._take_match(other, stamp_ns)
        if match is None:
            self._waiting[side].append(_Waiting(stamp_ns, item, self._seen[other]))
        else:
            pairs.append((item, match.item) if side == LEFT else (match.item, item))
        unpaired = self._expire(other)
        return pairs, unpaired

    def finish(self) -> list[Item]:
        """Return every item still waiting: the bag ended before their partners came."""
        leftovers = [w.item for w in (*self._waiting[LEFT], *self._waiting[RIGHT])]
        self._waiting[LEFT].clear()
        self._waiting[RIGHT].clear()
        return leftovers

    def _take_match(self, side: int, stamp_ns: int) -> '_Waiting | None':
        best = None
        for waiting in self._waiting[side]:
            distance = abs(waiting.stamp_ns - stamp_ns)
            if distance <= self.tolerance_ns and (
                    best is None or distance < abs(best.stamp_ns - stamp_ns)):
                best = waiting
        if best is not None:
            self._waiting[side].remove(best)
        return best

    def _expire(self, side: int) -> list[Item]:
        """Give up on `side`'s items that the other side has passed by more than `window`."""
        expired = []
        queue = self._waiting[side]
        while queue and self._seen[1 - side] - queue[0].others_seen_at_arrival > self.window:
            expired.append(queue.popleft().item)
        return expired

"""The demo's frames read back from bags: rainy and clean input, and the node's recorded output."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stereo_derain_ros.bagio.reading import open_bag, typestore
from stereo_derain_ros.bagio.synthetic import CLEAN_NAMESPACE, IMAGE_LEAF, RAINY_NAMESPACE
from stereo_derain_ros.demo.node_process import OUTPUT_NAMESPACE, SIDES
from stereo_derain_ros.image_codec import image_to_numpy
from stereo_derain_ros.stamps import header_stamp_ns

Pair = tuple[np.ndarray, np.ndarray]


@dataclass
class DemoFrame:
    """One stereo set of the demo by header stamp; `derained` is None if the node dropped it."""

    stamp: int
    rainy: Pair
    clean: Pair
    derained: Pair | None = None


def sample_indices(count: int, wanted: int) -> list[int]:
    """Return up to `wanted` indices spread evenly over `count` items, first and last included."""
    if count <= wanted:
        return list(range(count))
    if wanted == 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def read_pairs(bag: Path, namespace: str) -> dict[int, Pair]:
    """Return {header stamp: (left, right)} of the RGB image pairs under `namespace`."""
    topics = {f'{namespace}/{side}/{IMAGE_LEAF}': side for side in SIDES}
    views: dict[int, dict[str, np.ndarray]] = {}
    store = typestore()
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, _, raw in reader.messages(connections=connections):
            message = store.deserialize_cdr(raw, connection.msgtype)
            array, order = image_to_numpy(message)
            if order == 'bgr':
                array = array[..., ::-1]
            stamp = header_stamp_ns(message)
            views.setdefault(stamp, {})[topics[connection.topic]] = np.array(array)
    return {stamp: (sides['left'], sides['right'])
            for stamp, sides in sorted(views.items()) if len(sides) == len(SIDES)}


def read_demo_frames(input_bag: Path, recorded_bag: Path) -> list[DemoFrame]:
    """Return every input set in stamp order with the node's output attached where it came."""
    rainy = read_pairs(input_bag, RAINY_NAMESPACE)
    clean = read_pairs(input_bag, CLEAN_NAMESPACE)
    derained = read_pairs(recorded_bag, OUTPUT_NAMESPACE)
    return [DemoFrame(stamp, pair, clean[stamp], derained.get(stamp))
            for stamp, pair in rainy.items() if stamp in clean]

"""The one seed convention: every random draw of the data layer comes from (purpose, seed, index).

`generator(purpose, seed, index)` seeds numpy from the tuple, so sample `index` of any set is
reproducible on its own, and sets with different purposes never share a stream whatever their
seeds: training scenes, training rain, validation and each held-out set are separate purposes.
"""

import hashlib

import numpy as np

PURPOSES = ('train-scene', 'train-rain', 'val-scene', 'val-rain', 'val-compose', 'synth',
            'synth-augment', 'val-saturation')


def purpose_id(purpose: str) -> int:
    if purpose not in PURPOSES and not purpose.startswith('heldout:'):
        raise ValueError(f'unknown seed purpose {purpose!r}; expected one of {PURPOSES} or '
                         'heldout:NAME')
    return int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:8], 'little')


def generator(purpose: str, seed: int, index: int) -> np.random.Generator:
    """Return the generator of sample `index` of a set (purpose, seed)."""
    return np.random.default_rng([purpose_id(purpose), seed, index])

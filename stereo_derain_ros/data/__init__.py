"""Training and evaluation data: on-the-fly synthetic stereo rain and readers of published layouts.

Seed convention: sample i of a synthetic dataset is fully determined by seed = base_seed + i.
Training uses base seeds from 0 upwards, held-out sets start at HELD_OUT_BASE_SEED (10**9), so the
two never share a sample.
"""

HELD_OUT_BASE_SEED = 10 ** 9

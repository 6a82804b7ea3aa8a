"""The shipped default weights load through the engine and beat the rainy input."""

from pathlib import Path

import numpy as np
import torch

from stereo_derain_ros.data.heldout import heldout_set
from stereo_derain_ros.engine import DerainEngine, EngineConfig, load_checkpoint
from stereo_derain_ros.engine.weights import packaged_weights
from stereo_derain_ros.evaluation.metrics import psnr
from stereo_derain_ros.evaluation.runner import to_uint8_image

MODEL_CARD = Path(__file__).resolve().parent.parent / 'stereo_derain_ros' / 'weights' / \
    'bandnet.md'


def _as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255.0


def test_packaged_bandnet_weights_carry_their_recipe():
    path = packaged_weights('bandnet')
    assert path is not None, 'stereo_derain_ros/weights/bandnet.safetensors is missing'
    assert path.stat().st_size < 8 * 1024 * 1024
    _, metadata = load_checkpoint(path)
    recipe = metadata['recipe']
    assert metadata['model'] == 'bandnet'
    assert recipe['step'] == recipe['steps'] and recipe['data'] == 'synthetic'
    assert MODEL_CARD.exists()


def test_packaged_weights_beat_the_rainy_input_on_held_out_pairs():
    torch.set_num_threads(1)
    engine = DerainEngine(EngineConfig(device='cpu', precision='fp32', warmup_shape=None))
    assert engine.model_name == 'bandnet'
    heldout = heldout_set('medium')
    for index in (0, len(heldout) - 1):
        sample = heldout[index]
        rainy = [to_uint8_image(sample[view]) for view in ('rainy_left', 'rainy_right')]
        derained = engine.derain(*rainy, 'rgb')
        for view, clean_key, rainy_view in zip(derained, ('clean_left', 'clean_right'), rainy):
            gain = float(psnr(_as_tensor(view), sample[clean_key])) - float(
                psnr(_as_tensor(rainy_view), sample[clean_key]))
            assert gain > 2.0, f'held-out sample {index}: only {gain:.2f} dB over the rainy input'

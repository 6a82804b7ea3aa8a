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


def _derain_scores(engine: DerainEngine, sample: dict) -> list[tuple[float, float, float]]:
    """Return (rainy PSNR, derained PSNR, derained mean shift in grey levels) per view."""
    rainy = [to_uint8_image(sample[view]) for view in ('rainy_left', 'rainy_right')]
    derained = engine.derain(*rainy, 'rgb')
    scores = []
    for view, clean_key, rainy_view in zip(derained, ('clean_left', 'clean_right'), rainy):
        clean = sample[clean_key]
        shift = float((_as_tensor(view).double() - clean.double()).mean()) * 255.0
        scores.append((float(psnr(_as_tensor(rainy_view), clean)),
                       float(psnr(_as_tensor(view), clean)), shift))
    return scores


def test_packaged_weights_beat_the_rainy_input_and_leave_clean_frames_alone():
    """The shipped contract: a gain on held-out rain, no damage to held-out rain-free frames.

    The weights shipped before the data layer gained 2-3 dB on preset rain by stretching
    contrast, which cost rain-free frames 8 dB (34.5 dB against the untouched input); these
    gain less on preset rain (0.7-0.9 dB on the pairs below) and keep rain-free frames above
    40 dB. See docs/model_card.md.
    """
    torch.set_num_threads(1)
    engine = DerainEngine(EngineConfig.from_options(device='cpu', precision='fp32',
                                                    warmup_shape=None))
    assert engine.model_name == 'bandnet'
    heldout = heldout_set('medium')
    for index in (0, len(heldout) - 1):
        for rainy, derained, _ in _derain_scores(engine, heldout[index]):
            assert derained - rainy > 0.5, f'held-out sample {index}: {rainy:.2f} -> ' \
                f'{derained:.2f} dB'
    clean = heldout_set('clean')
    for index in (0, 1):
        for _, derained, shift in _derain_scores(engine, clean[index]):
            assert derained >= 40.0 and abs(shift) < 1.5, (index, derained, shift)

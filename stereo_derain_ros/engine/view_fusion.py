"""Second-view fusion: correct the network's output with what the other view shows at each pixel.

What the network leaves of a streak in one view mostly lies over background that the other view
sees clear, since a streak sits at its own depth and the background at another (docs/model_card.md,
"What the second view is worth"); and what it darkens that both rainy views show alike at the
match is mostly scene it took for rain. The network's own exchange runs at 1/8 and 1/16
resolution, too coarse to carry that detail, so this step matches the derained pair at half
resolution with the package's SGBM (`match_disparity`), and a small learnt gate
(`models.fusion_gate`, trained on training photographs by `stereo-derain train-fusion-gate`)
reads cue maps of the pair and its match and moves each pixel towards its match, or back
towards its rainy input, by two shares.
Where the network changed nothing (rain-free frames, mostly) the gate is closed. Two cameras
rarely agree in brightness (exposure, gain, vignetting), so the other view is first brought to
this view's brightness by a gain and offset fitted on the matched pixels; without that, a 15 %
exposure difference took the fusion's whole gain on real pairs (docs/model_card.md, "Second-view
fusion"). The right view's disparity is the left one's splatted onto the right view, which costs
no second match. SGBM, the fit, the cue maps and the blend run on the host (OpenCV's matcher and
remap, a few milliseconds each); the gate, most of the fusion's arithmetic, runs on the
network's device and in its precision, both views of a pair in one batch.
"""

import cv2
import numpy as np
import torch

from stereo_derain_ros.engine.checkpoint import build_fusion_gate_from_checkpoint
from stereo_derain_ros.engine.errors import EngineError
from stereo_derain_ros.engine.pixel_layers import run_layers
from stereo_derain_ros.engine.weights import packaged_weights
from stereo_derain_ros.models.fusion_gate import (
    DARKENED_SCALE_GREY,
    DISAGREEMENT_SCALE_GREY,
    FusionGate,
)
from stereo_derain_ros.pixels import as_uint8
from stereo_derain_ros.sgbm import MatchWarp, sgbm_disparity, warp_disparity_to_right

# SGBM matches the derained pair shrunk by this factor: an eighth of the work (a quarter of the
# pixels, half the disparities), and with the gate trained on its matches the fusion gains as
# much or more on every rainy tuning set (docs/model_card.md, "Matching at half resolution").
MATCH_SCALE = 2
# Channel means of [0, 1] values, as grey levels (0-255).
_TO_GREY = np.full((1, 3), 255.0 / 3.0, np.float32)
# After a first least-squares fit over every matched pixel, each further round refits on those
# whose views still differ by less than its number of grey levels, coarse to fine, so that rain
# residue, occlusions and mismatches drop out: over all pixels the fit reads them as a gain of
# 0.89-0.99 on pairs of one camera.
BRIGHTNESS_FIT_GREY = (32.0, 16.0, 8.0, 4.0, 4.0)
# Grey levels beyond which a pixel may be clipped by its camera, so that it follows no gain: the
# fit leaves out pixels darker or brighter than these in either view.
BRIGHTNESS_FIT_UNCLIPPED_GREY = (4.0, 250.0)
# Fewer matched pixels than this, or a gain outside BRIGHTNESS_GAIN_RANGE, is no fit: the views
# are taken as they are.
BRIGHTNESS_FIT_MIN_PIXELS = 256
BRIGHTNESS_GAIN_RANGE = (0.5, 2.0)
# The fit reads every BRIGHTNESS_FIT_STRIDE-th row and column: a quarter of the pixels fit the
# same two numbers at a quarter of the cost.
BRIGHTNESS_FIT_STRIDE = 2


def match_disparity(left: np.ndarray, right: np.ndarray, disparity_range: int) -> np.ndarray:
    """Return the left view's disparity in px (NaN: no match) as the fusion matches the views.

    `left` and `right` are the derained H×W×3 views (uint8 or [0, 1] floats); `disparity_range`
    is SGBM's search range at full resolution, a positive multiple of 16. SGBM runs on the views
    shrunk by MATCH_SCALE (area averages) over the range shrunk alike, rounded up to a multiple of
    16; each match serves the MATCH_SCALE × MATCH_SCALE pixels it came from.
    """
    if disparity_range <= 0 or disparity_range % 16:
        raise ValueError(f'disparity_range must be a positive multiple of 16, got '
                         f'{disparity_range}')
    height, width = left.shape[:2]
    small_size = (max(1, width // MATCH_SCALE), max(1, height // MATCH_SCALE))
    small = [cv2.resize(as_uint8(view), small_size, interpolation=cv2.INTER_AREA)
             for view in (left, right)]
    small_range = 16 * -(-disparity_range // (16 * MATCH_SCALE))
    disparity = sgbm_disparity(*small, small_range) * np.float32(MATCH_SCALE)
    return cv2.resize(disparity, (width, height), interpolation=cv2.INTER_NEAREST)


def _grey(image: np.ndarray) -> np.ndarray:
    """Return an H×W×3 [0, 1] image as H×W grey levels (mean over channels, 0-255)."""
    return cv2.transform(image, _TO_GREY)


def brightness_fit(own_grey: np.ndarray, warped_grey: np.ndarray,
                   matched: np.ndarray) -> tuple[float, float]:
    """Return (gain, offset in grey levels) that take the warped other view to this one.

    `own_grey` and `warped_grey` are H×W grey levels (0-255) of this view and of the other view
    warped onto it, `matched` where the warp found a match. (1, 0) where too few unclipped
    pixels matched or the fit is implausible.
    """
    step = BRIGHTNESS_FIT_STRIDE
    own_grey, warped_grey = own_grey[::step, ::step], warped_grey[::step, ::step]
    darkest, brightest = BRIGHTNESS_FIT_UNCLIPPED_GREY
    usable = (matched[::step, ::step] & (own_grey > darkest) & (own_grey < brightest)
              & (warped_grey > darkest) & (warped_grey < brightest))
    # Only the usable pixels, in their order: every round selects among these.
    own_grey, warped_grey = own_grey[usable], warped_grey[usable]
    keep = np.ones(own_grey.size, bool)
    gain, offset = 1.0, 0.0
    for tolerance in (None, *BRIGHTNESS_FIT_GREY):
        if tolerance is not None:
            keep = np.abs(own_grey - (gain * warped_grey + offset)) < tolerance
        if np.count_nonzero(keep) < BRIGHTNESS_FIT_MIN_PIXELS:
            return 1.0, 0.0
        x, y = warped_grey[keep], own_grey[keep]
        x_mean, y_mean = float(x.mean(dtype=np.float64)), float(y.mean(dtype=np.float64))
        x, y = x - np.float32(x_mean), y - np.float32(y_mean)
        spread = float(np.dot(x, x)) / x.size
        if spread < 1e-6:
            return 1.0, 0.0
        gain = float(np.dot(x, y)) / x.size / spread
        offset = y_mean - gain * x_mean
    if not BRIGHTNESS_GAIN_RANGE[0] <= gain <= BRIGHTNESS_GAIN_RANGE[1]:
        return 1.0, 0.0
    return gain, offset


def gate_features(rainy: np.ndarray, derained: np.ndarray, other_rainy: np.ndarray,
                  other_derained: np.ndarray, disparity: np.ndarray,
                  view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the gate's 6×H×W features (`fusion_gate.FEATURES`) and its two H×W×3 corrections.

    Images are H×W×3 float32 in [0, 1]; `view` ('left' or 'right') is the view being fused and
    `disparity` its disparity (not finite: no match). The corrections (`fusion_gate.SHARES`) are
    the gap to the match (match minus derained pixel) and the way back to the rainy input (rainy
    minus derained); the disagreements are signed (match minus pixel). Both warped views are
    first brought to this view's brightness (`brightness_fit`, on the derained views).
    """
    warp = MatchWarp(disparity, view)
    warped, warped_rainy, matched = warp(other_derained), warp(other_rainy), warp.known
    # Grey levels are linear in the views, so the cues are differences of four grey maps.
    grey_rainy, grey_derained, grey_warped, grey_warped_rainy = (
        _grey(image) for image in (rainy, derained, warped, warped_rainy))
    gain, offset = brightness_fit(grey_derained, grey_warped, matched)
    if (gain, offset) != (1.0, 0.0):
        gain, offset = np.float32(gain), np.float32(offset)
        warped *= gain
        warped += offset / np.float32(255.0)
        for grey in (grey_warped, grey_warped_rainy):
            grey *= gain
            grey += offset
    features = np.stack([(grey_rainy - grey_derained) / DARKENED_SCALE_GREY,
                         (grey_warped_rainy - grey_warped) / DARKENED_SCALE_GREY,
                         (grey_warped - grey_derained) / DISAGREEMENT_SCALE_GREY,
                         matched.astype(np.float32),
                         (grey_warped_rainy - grey_rainy) / DISAGREEMENT_SCALE_GREY,
                         grey_derained / np.float32(255.0) - np.float32(0.5)])
    return features, warped - derained, rainy - derained


def gate_shares(gate: FusionGate, features: np.ndarray, precision: str = 'fp32') -> np.ndarray:
    """Return the gate's N×2×H×W shares (`fusion_gate.SHARES`) for N×6×H×W features.

    The gate runs on its own device, channels-last, as `load_fusion_gate` lays it out, and on a
    CPU over bands of rows with fused convolutions (`pixel_layers.run_layers`). `precision` is
    one that `precision.resolve_precision` returned for that device (bf16 runs the gate about
    twice as fast as fp32 on a CPU that has it in hardware).
    """
    device = next(gate.parameters()).device
    batch = torch.from_numpy(features).to(device)
    logits = run_layers(gate.layers, batch, gate.receptive_radius, precision)
    with torch.inference_mode():
        return gate.shares(batch, logits).float().cpu().numpy()


def moved_view(derained: np.ndarray, gap: np.ndarray, back: np.ndarray,
               shares: np.ndarray) -> np.ndarray:
    """Return an H×W×3 derained view moved along both corrections by 2×H×W `shares`."""
    towards_match, towards_input = shares
    return derained + towards_match[..., None] * gap + towards_input[..., None] * back


def blend_view(gate: FusionGate, rainy: np.ndarray, derained: np.ndarray,
               other_rainy: np.ndarray, other_derained: np.ndarray, disparity: np.ndarray,
               view: str) -> np.ndarray:
    """Return one derained view moved by the gate's shares (see gate_features, `SHARES`)."""
    features, gap, back = gate_features(rainy, derained, other_rainy, other_derained, disparity,
                                        view)
    return moved_view(derained, gap, back, gate_shares(gate, features[None])[0])


def load_fusion_gate(path: str | None = None) -> FusionGate:
    """Return the gate at `path`, else the packaged one, vetted like any checkpoint."""
    if path is None:
        path = packaged_weights(FusionGate.name)
        if path is None:
            raise EngineError(
                f'view_fusion needs the packaged gate {FusionGate.name}.safetensors, which this '
                'installation lacks; expected it in stereo_derain_ros/weights (stereo-derain '
                'train-fusion-gate writes one)')
    return build_fusion_gate_from_checkpoint(path).to(memory_format=torch.channels_last)


def fuse_views(gate: FusionGate, rainy_left: torch.Tensor, rainy_right: torch.Tensor,
               left: torch.Tensor, right: torch.Tensor,
               disparity_range: int, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse N×3×H×W derained views (floats in [0, 1], any device) with their rainy inputs.

    `gate` is moved to the views' device first, so it follows the network there and back to the
    CPU after an out-of-memory fall-back, and runs in the network's `precision` (as the backend
    resolved it). `disparity_range` is SGBM's search range in pixels (a positive multiple of 16,
    see `match_disparity`); about that many of the left view's leftmost columns have no match and
    stay as the network left them.
    """
    gate.to(left.device)
    views = [np.ascontiguousarray(tensor.float().permute(0, 2, 3, 1).cpu().numpy())
             for tensor in (rainy_left, rainy_right, left, right)]
    fused_left, fused_right = [], []
    for rainy_l, rainy_r, out_l, out_r in zip(*views):
        disparity = match_disparity(out_l, out_r, disparity_range)
        cues = (gate_features(rainy_l, out_l, rainy_r, out_r, disparity, 'left'),
                gate_features(rainy_r, out_r, rainy_l, out_l, warp_disparity_to_right(disparity),
                              'right'))
        shares = gate_shares(gate, np.stack([features for features, _, _ in cues]), precision)
        (_, gap_l, back_l), (_, gap_r, back_r) = cues
        fused_left.append(moved_view(out_l, gap_l, back_l, shares[0]))
        fused_right.append(moved_view(out_r, gap_r, back_r, shares[1]))
    return tuple(torch.from_numpy(np.stack(fused)).permute(0, 3, 1, 2).to(left.device)
                 for fused in (fused_left, fused_right))

"""Refiner: a full-resolution correction after the network, on by default, never a hazard.

An untrained refiner changes nothing; the engine's fast CPU run (bands of rows, fused
convolutions) gives what the refiner's own layers give; a monochrome view stays grey; the
packaged refiner is vetted like any checkpoint, and the engine runs it unless told not to.
"""

from dataclasses import make_dataclass

import numpy as np
import pytest
import torch

from stereo_derain_ros.engine import (
    CheckpointError,
    DerainEngine,
    EngineConfig,
    pixel_layers,
    save_checkpoint,
)
from stereo_derain_ros.engine.checkpoint import build_refiner_from_checkpoint
from stereo_derain_ros.engine.refinement import load_refiner, refine_views
from stereo_derain_ros.engine.weights import packaged_weights
from stereo_derain_ros.models.refiner import GREY_GAIN, grown_refiner, Refiner
from stereo_derain_ros.training.refiner import fit_refiner, refiner_views, RefinerViews
from stereo_derain_ros.training.refiner_config import EVERY_PAIR_KIND, RefinerTrainingConfig

HEIGHT, WIDTH = 40, 72


def _views(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return 1×3×H×W rainy and derained views: texture, with a few grey levels taken away."""
    draws = torch.Generator().manual_seed(seed)
    derained = torch.rand(1, 3, HEIGHT, WIDTH, generator=draws) * 0.6 + 0.2
    rainy = derained.clone()
    rainy[..., 10:30, 20:60:7] += 8 / 255
    return rainy, derained


def test_an_untrained_refiner_returns_the_derained_views_unchanged():
    rainy, derained = _views(0)
    with torch.inference_mode():
        assert torch.equal(Refiner()(rainy, derained), derained)


@pytest.mark.parametrize('bands', [False, True])
def test_the_engine_runs_the_refiner_as_its_layers_run(monkeypatch, bands):
    if bands:  # 7 rows: 5 bands and a part
        monkeypatch.setattr('stereo_derain_ros.engine.pixel_layers.CPU_BAND_PIXELS', 7 * WIDTH)
    refiner = load_refiner()
    (rainy_left, left), (rainy_right, right) = _views(1), _views(2)
    refined = refine_views(refiner, rainy_left, rainy_right, left, right, 'fp32', grey=False)
    with torch.inference_mode():
        layers = [refiner(rainy, derained) for rainy, derained in
                  ((rainy_left, left), (rainy_right, right))]
    for engine_view, own in zip(refined, layers):
        assert not torch.equal(engine_view, left)
        assert (engine_view - own).abs().max() < 1e-6


def test_a_grown_refiner_computes_what_it_was_grown_from_and_can_learn_more():
    rainy, derained = _views(5)
    refiner = load_refiner()
    with torch.inference_mode():
        wanted = refiner(rainy, derained)
    hidden, middle_layers = refiner.config.hidden, refiner.config.middle_layers
    grown = grown_refiner(refiner, hidden + 8, middle_layers + 2)
    assert (grown.config.hidden, grown.config.middle_layers) == (hidden + 8, middle_layers + 2)
    assert grown.receptive_radius == refiner.receptive_radius + 2
    with torch.inference_mode():
        assert (grown.eval()(rainy, derained) - wanted).abs().max() < 1e-6
    # Every new weight has a gradient to learn from, not only the old ones.
    ((grown(rainy, derained) - derained) ** 2).mean().backward()
    new_middle, output = grown.layers[-3], grown.layers[-1]
    assert new_middle.weight.grad.abs().sum() > 0
    assert output.weight.grad[:, hidden:].abs().sum() > 0
    with pytest.raises(ValueError, match=f'cannot grow a refiner of width {hidden}, '
                                         f'{middle_layers} middle layers and 1 correction per '
                                         'pixel to width 8, 3 middle layers and 1 correction'):
        grown_refiner(refiner, 8, 3)


def test_a_monochrome_view_stays_grey():
    rainy, derained = (view[:, :1].expand(-1, 3, -1, -1).contiguous() for view in _views(3))
    refined = refine_views(load_refiner(), rainy, rainy, derained, derained, 'fp32',
                           grey=True)[0]
    assert torch.equal(refined[:, 0], refined[:, 1]) and torch.equal(refined[:, 1], refined[:, 2])


def test_the_engine_refines_by_default_and_not_when_told():
    draws = np.random.default_rng(4)
    left, right = (draws.integers(40, 200, (48, 96, 3), dtype=np.uint8) for _ in range(2))
    left[:, 20:80:9] = 235  # thin bright streaks
    default, plain = (DerainEngine(EngineConfig.from_options(device='cpu', threads=1,
                                                             warmup_shape=None, **options))
                      for options in ({}, {'refine': False}))
    assert default.config.refine and not plain.config.refine
    refined, network = default.derain(left, right)[0], plain.derain(left, right)[0]
    assert refined.shape == left.shape and not np.array_equal(refined, network)
    # On colour pairs the packaged colour-pair refiner corrects each channel on its own...
    change = refined.astype(int) - network
    assert (change.max(axis=2) - change.min(axis=2)).max() > 1
    # ...on grey pairs the packaged refiner corrects brightness only: the same change in every
    # channel (up to rounding).
    grey_left, grey_right = (np.repeat(view[..., 1:2], 3, axis=2) for view in (left, right))
    change = (default.derain(grey_left, grey_right)[0].astype(int)
              - plain.derain(grey_left, grey_right)[0])
    assert np.abs(change).max() > 1 and (change.max(axis=2) - change.min(axis=2)).max() <= 1
    with pytest.raises(ValueError, match="^refine must be true or false, got 'yes'"):
        EngineConfig(refine='yes')


def test_the_packaged_refiner_follows_only_the_packaged_weights_unless_one_is_named(tmp_path):
    from stereo_derain_ros.engine.weights import packaged_weights as packaged

    options = {'device': 'cpu', 'warmup_shape': None}
    assert DerainEngine(EngineConfig(**options)).refines
    assert DerainEngine(EngineConfig(weights=str(packaged('bandnet')), **options)).refines
    tuned = save_checkpoint(tmp_path / 'tuned.safetensors',
                            DerainEngine(EngineConfig(**options)).model)
    assert not DerainEngine(EngineConfig(weights=str(tuned), **options)).refines
    assert not DerainEngine(EngineConfig(model='bandnet_mono', allow_untrained=True,
                                         **options)).refines
    named = DerainEngine(EngineConfig(weights=str(tuned), refiner=str(packaged('refiner')),
                                      **options))
    assert named.refines and named.refiner_source == str(packaged('refiner'))
    assert DerainEngine(EngineConfig(**options)).refiner_source == (
        'packaged:refiner.safetensors (colour pairs: refiner_colour.safetensors)')
    assert not DerainEngine(EngineConfig(refine=False, **options)).refines


def test_the_packaged_refiner_loads_vetted_and_others_are_refused(tmp_path):
    assert packaged_weights('refiner') is not None
    with pytest.raises(CheckpointError, match="holds model 'fusion_gate', not a 'refiner' "
                                              r'\(from stereo-derain train-refiner\)'):
        build_refiner_from_checkpoint(packaged_weights('fusion_gate'))
    wide = save_checkpoint(tmp_path / 'wide.safetensors', Refiner(hidden=300))
    with pytest.raises(CheckpointError, match='has refiner config'):
        build_refiner_from_checkpoint(wide)
    deep = save_checkpoint(tmp_path / 'deep.safetensors', Refiner(hidden=8, middle_layers=5))
    assert build_refiner_from_checkpoint(deep).config.middle_layers == 5
    for config in ({'hidden': 8, 'middle_layers': -1}, {'hidden': 8, 'depth': 5},
                   {'middle_layers': 3}):
        odd = Refiner(hidden=8)
        odd.config = make_dataclass('OddConfig', list(config))(**config)
        path = save_checkpoint(tmp_path / 'odd.safetensors', odd)
        with pytest.raises(CheckpointError, match=r'expected \{"hidden": 1 to 256, '
                                                  r'"middle_layers": 0 to 256, '
                                                  r'"corrections": 1 to 256\}'):
            build_refiner_from_checkpoint(path)
    other = Refiner(hidden=8)
    other.layers[-1] = torch.nn.Conv2d(8, 3, 3, padding=1)  # a correction per channel, unsaid
    path = save_checkpoint(tmp_path / 'other.safetensors', other)
    with pytest.raises(CheckpointError, match='does not fit a refiner of width 8: tensors '
                                              'layers.8.bias, layers.8.weight'):
        build_refiner_from_checkpoint(path)
    two = Refiner(hidden=8)
    two.config.corrections = 2
    path = save_checkpoint(tmp_path / 'two.safetensors', two)
    with pytest.raises(CheckpointError, match="'corrections': 2, .*}: a refiner returns "
                                              '1 or 3 corrections per pixel, not 2'):
        build_refiner_from_checkpoint(path)
    broken = Refiner(hidden=4)
    with torch.no_grad():
        broken.layers[0].weight[0, 0, 1, 1] = float('nan')
    path = save_checkpoint(tmp_path / 'nan.safetensors', broken)
    with pytest.raises(CheckpointError, match='has NaN or infinite values .*layers.0.weight'):
        build_refiner_from_checkpoint(path)
    with pytest.raises(CheckpointError, match='missing.safetensors'):
        DerainEngine(EngineConfig(device='cpu', warmup_shape=None,
                                  refiner=str(tmp_path / 'missing.safetensors')))


def test_a_short_fit_learns_to_take_away_what_the_derainer_left():
    """Faint streaks left on texture: a few hundred steps already remove some of them."""
    draws = torch.Generator().manual_seed(5)
    views = RefinerViews([], [], [])
    for _ in range(4):
        wanted = (torch.rand(3, 64, 64, generator=draws) * 120 + 60).round()
        left = wanted.clone()
        left[:, :, 5:60:6] += 6  # faint streaks the derainer left
        rainy = left.clone()
        rainy[:, :, 8:60:6] += 30  # strong ones it removed
        views.rainy.append(rainy.to(torch.uint8))
        views.derained.append(left.to(torch.uint8))
        views.wanted.append(wanted.to(torch.uint8))
    config = RefinerTrainingConfig(steps=300, patch=48, batch_patches=4, hidden=8)
    refiner, gain = fit_refiner(views, config)
    assert gain > 0.5
    rainy, derained, wanted = (torch.stack(part).float() / 255 for part in
                               (views.rainy, views.derained, views.wanted))
    with torch.inference_mode():
        before = ((derained - wanted) ** 2).mean()
        after = ((refiner(rainy, derained) - wanted) ** 2).mean()
    assert after < 0.8 * before


def test_the_learning_rate_warms_up_then_decays():
    """From zero to full over the warm-up, then down a cosine to zero at the last step."""
    from stereo_derain_ros.training.refiner import _rate_factor

    config = RefinerTrainingConfig(steps=1000, warmup_steps=100)
    shares = [_rate_factor(config, step) for step in range(1000)]
    assert shares[0] == pytest.approx(0.01) and shares[49] == pytest.approx(0.5, abs=0.01)
    assert all(later > earlier for earlier, later in zip(shares[:99], shares[1:100]))
    assert shares[99] == pytest.approx(max(shares), abs=1e-9)
    assert shares[99] == 1.0 and shares[550] == pytest.approx(0.5) and shares[-1] < 1e-4
    assert all(later < earlier for earlier, later in zip(shares[100:], shares[101:]))


def test_a_fit_without_views_or_with_views_too_small_says_so():
    with pytest.raises(ValueError, match='^no derained view to learn from'):
        fit_refiner(RefinerViews([], [], []), RefinerTrainingConfig(steps=1))
    small = RefinerViews(*([torch.zeros(3, 32, 80, dtype=torch.uint8)] for _ in range(3)))
    with pytest.raises(ValueError, match='^training views are 32 px on their short side; '
                                         'expected at least the 96-px patch'):
        fit_refiner(small, RefinerTrainingConfig(steps=1))


def test_procedural_pairs_want_the_clean_views_under_their_veil(tmp_path):
    """The veil is left to the network: the wanted view keeps it and loses only the streaks.

    Procedural pairs come after the photo pairs and leave those as they were drawn without them.
    """
    from stereo_derain_ros.data.photos.library import PhotoLibrary
    from stereo_derain_ros.data.seeds import generator
    from stereo_derain_ros.rain.procedural import procedural_scene
    from stereo_derain_ros.training.refiner import SEED_PURPOSE

    library = PhotoLibrary.open_or_builtin(tmp_path / 'no_cache', 'train')
    calls = []

    def keep(left, right):
        calls.append(left.shape)
        return left, right

    photos_only = refiner_views(keep, library, RefinerTrainingConfig(pairs=1))
    views = refiner_views(keep, library, RefinerTrainingConfig(pairs=1, procedural_pairs=1))
    assert len(views.rainy) == len(views.wanted) == 4 and len(calls) == 3
    for part, alone in ((views.rainy, photos_only.rainy), (views.wanted, photos_only.wanted)):
        assert all(torch.equal(view, first) for view, first in zip(part, alone))
    rng = generator(SEED_PURPOSE, RefinerTrainingConfig().seed, 1)
    clean = torch.from_numpy(procedural_scene(int(rng.integers(2 ** 62))).left).permute(2, 0, 1)
    rainy, wanted = views.rainy[2].float(), views.wanted[2].float()
    assert wanted.shape == clean.shape
    assert (wanted - clean.float()).mean() > 5  # the heavy preset's veil, kept
    assert (rainy - wanted).abs().mean() > 1  # the streaks, taken away
    assert torch.equal(views.derained[2], views.rainy[2])


def test_pair_kinds_say_what_rain_each_photo_pair_gets_in_turn(tmp_path):
    """A kind repeated is drawn more often; a clean kind wants its input back, mono stays grey."""
    from stereo_derain_ros.data.photos.library import PhotoLibrary

    library = PhotoLibrary.open_or_builtin(tmp_path / 'no_cache', 'train')
    config = RefinerTrainingConfig(pairs=3, pair_kinds=('clean-mono', 'heavy'))
    views = refiner_views(lambda left, right: (left, right), library, config)
    kinds = [('clean-mono', 'heavy', 'clean-mono')[index // 2] for index in range(6)]
    for kind, rainy, wanted in zip(kinds, views.rainy, views.wanted):
        assert torch.equal(rainy, wanted) == (kind == 'clean-mono')
        assert (rainy.float().std(dim=0).max() == 0) == (kind == 'clean-mono')
    with pytest.raises(ValueError, match="^unknown pair kind 'medium-colour'; expected"):
        refiner_views(lambda left, right: (left, right), library,
                      RefinerTrainingConfig(pairs=1, pair_kinds=('medium-colour',)))


def test_saturation_scales_the_chroma_of_some_colour_scenes_and_keeps_every_other_draw(
        tmp_path):
    """Scenes are saturated before rain is laid on them; mono pairs and the rain stay as drawn."""
    from stereo_derain_ros.data.photos.library import PhotoLibrary
    from stereo_derain_ros.rain.scene import StereoScene
    from stereo_derain_ros.training.refiner import saturated_scene

    library = PhotoLibrary.open_or_builtin(tmp_path / 'no_cache', 'train')
    kinds = ('medium', 'clean-mono')
    plain = refiner_views(lambda left, right: (left, right), library,
                          RefinerTrainingConfig(pairs=8, pair_kinds=kinds))
    views = refiner_views(lambda left, right: (left, right), library,
                          RefinerTrainingConfig(pairs=8, pair_kinds=kinds, saturation=1.0))

    def chroma(view):
        return float((view.float().amax(dim=0) - view.float().amin(dim=0)).mean())

    changed = []
    for index in range(0, 16, 2):
        same = torch.equal(views.wanted[index], plain.wanted[index])
        if (index // 2) % 2:  # monochrome pairs are never saturated
            assert same and torch.equal(views.rainy[index], plain.rainy[index])
        elif not same:
            changed.append(index)
            assert chroma(views.wanted[index]) > 1.05 * chroma(plain.wanted[index])
            # The same streaks: rain is drawn as it is without the saturation.
            rain = (views.rainy[index].float() - views.wanted[index].float()).abs() > 2
            plain_rain = (plain.rainy[index].float() - plain.wanted[index].float()).abs() > 2
            assert (rain == plain_rain).float().mean() > 0.95
    assert 0 < len(changed) < 4
    # Grey stays grey; a colour moves away from its luma, which stays where it was.
    left = np.full((2, 2, 3), 128, np.uint8)
    right = left.copy()
    right[0, 0] = (150, 100, 120)
    disparity = np.zeros((2, 2), np.float32)
    scene = saturated_scene(StereoScene(left, right, disparity, disparity, 100.0, 0.1), 2.0)
    assert np.array_equal(scene.left, left)
    luma = np.dot([150, 100, 120], [0.299, 0.587, 0.114])
    assert np.allclose(scene.right[0, 0], np.rint(luma + 2.0 * (np.array([150, 100, 120]) - luma)))


def test_train_refiner_writes_a_refiner_the_engine_runs(tmp_path, monkeypatch, capsys):
    """A short fit on the built-in photographs: a loadable refiner with its recipe."""
    from stereo_derain_ros.cli import main
    from stereo_derain_ros.engine import load_checkpoint

    monkeypatch.setenv('STEREO_DERAIN_PHOTOS', str(tmp_path / 'no_cache'))
    out = tmp_path / 'refiner.safetensors'
    argv = ['train-refiner', '--out', str(out), '--pairs', '3', '--steps', '5', '--hidden', '4',
            '--threads', '1', '--device', 'cpu', '--no-progress', '--procedural-pairs', '1']
    assert main(argv) == 0
    refiner = build_refiner_from_checkpoint(out)
    metadata = load_checkpoint(out)[1]
    recipe = metadata['recipe']
    assert recipe['command'] == 'stereo-derain train-refiner'
    assert (recipe['pairs'], recipe['procedural_pairs'], recipe['steps'], recipe['seed'],
            recipe['hidden']) == (3, 1, 5, 11, 4)
    assert recipe['pair_kinds'] == list(EVERY_PAIR_KIND)
    assert recipe['derainer'].endswith('bandnet.safetensors') and recipe['views'] == 8
    assert np.isfinite(metadata['metrics']['last_batch_gain_db'])
    printed = capsys.readouterr()
    assert refiner.config.hidden == 4 and 'wrote' in printed.out
    # Without bars a fit still reports in the log: here every one of its 5 steps.
    assert printed.out.count('fit: step ') == 5
    assert 'fit: step 5 of 5, batch_gain_db ' in printed.out
    assert 'warning: the refiner learnt almost nothing' in printed.err  # 5 steps, warming up
    left = np.full((40, 80, 3), 120, np.uint8)
    engine = DerainEngine(EngineConfig.from_options(device='cpu', threads=1, refiner=out,
                                                    warmup_shape=None))
    assert engine.derain(left, left)[0].shape == left.shape
    # A long fit can run in parts: the next part goes on from the last one's refiner.
    again = tmp_path / 'again.safetensors'
    part = ['train-refiner', '--out', str(again), '--pairs', '1', '--steps', '2', '--hidden', '4',
            '--threads', '1', '--device', 'cpu', '--no-progress', '--init', str(out)]
    assert main([*part, '--lr', '5e-4']) == 0
    assert load_checkpoint(again)[1]['recipe']['init_recipe'] == recipe
    assert load_checkpoint(again)[1]['recipe']['init'] == str(out)
    assert load_checkpoint(again)[1]['recipe']['learning_rate'] == 5e-4
    assert recipe['learning_rate'] == RefinerTrainingConfig().learning_rate
    # A wider, deeper refiner goes on from a smaller one, grown to it.
    assert main([*part[:8], '6', *part[9:], '--middle-layers', '7']) == 0
    assert (load_checkpoint(again)[1]['recipe']['hidden'],
            load_checkpoint(again)[1]['recipe']['middle_layers']) == (6, 7)
    assert build_refiner_from_checkpoint(again).config.middle_layers == 7
    assert main([*part[:8], '2', *part[9:]]) == 2
    depth = RefinerTrainingConfig().middle_layers
    assert (f'--init {out} is a refiner of width 4 with {depth} middle layers and 1 '
            f'correction per pixel, larger than --hidden 2 --middle-layers {depth} '
            '--corrections 1 ask' in capsys.readouterr().err)
    assert main([*part, '--middle-layers', '-1']) == 2
    assert '--middle-layers must be 0 or more, got -1' in capsys.readouterr().err
    assert main([*part, '--saturation', 'nan']) == 2
    assert '--saturation must be 0 or more, got nan' in capsys.readouterr().err
    assert main([*part[:-1], str(tmp_path / 'missing.safetensors')]) == 2
    assert 'cannot go on from --init' in capsys.readouterr().err
    assert main([*argv[:2], str(tmp_path / 'refiner.pt'), *argv[3:]]) == 2
    assert main([*argv[:4], '0', *argv[5:]]) == 2
    assert main([*argv[:-1], '-1']) == 2
    assert '--procedural-pairs must be 0 or more, got -1' in capsys.readouterr().err
    assert main([*argv, '--lr', '0']) == 2
    assert '--lr must be above 0, got 0.0' in capsys.readouterr().err
    assert main([*argv, '--pair-kinds', 'medium,drizzle-mono']) == 2
    assert ("--pair-kinds: unknown pair kind 'drizzle-mono'; expected a rain preset"
            in capsys.readouterr().err)


def test_the_correction_is_in_grey_levels_of_the_output():
    """One unit out of the layers is 10 grey levels added to every channel."""
    derained = torch.full((1, 3, 2, 2), 0.5)
    refined = Refiner.refined(derained, torch.ones(1, 1, 2, 2))
    assert torch.allclose((refined - derained) * 255, torch.full_like(derained, 10.0))
    assert GREY_GAIN == pytest.approx(25.5)


@pytest.mark.skipif(not pixel_layers.CPU_FUSED_CONVOLUTION,
                    reason='this torch lacks oneDNN fused convolutions')
def test_the_last_convolution_as_taps_gives_what_the_layers_give(monkeypatch):
    """In fp32 the refiner's one-map output convolution runs as a 1×1 convolution to its taps."""
    refiner = build_refiner_from_checkpoint(packaged_weights('refiner'))
    refiner = refiner.to(memory_format=torch.channels_last)
    features = torch.rand(2, 6, 37, 53, generator=torch.Generator().manual_seed(3)) - 0.5
    features[:, 3:] *= 5
    convolutions = [module for module in refiner.layers if isinstance(module, torch.nn.Conv2d)]
    assert [pixel_layers._has_single_map_form(conv) for conv in convolutions] == (
        [False] * (len(convolutions) - 1) + [True])
    taps = pixel_layers.run_layers(refiner.layers, features, refiner.receptive_radius)
    monkeypatch.setattr(pixel_layers, 'CPU_FUSED_CONVOLUTION', False)
    layer_by_layer = pixel_layers.run_layers(refiner.layers, features, refiner.receptive_radius)
    assert taps.dtype == torch.float32 and taps.shape == (2, 1, 37, 53)
    assert 0.1 < layer_by_layer.abs().max() and (taps - layer_by_layer).abs().max() < 1e-5


def test_the_packaged_refiners_take_colour_pairs_to_the_colour_one():
    draws = np.random.default_rng(6)
    grey_left, grey_right = (draws.integers(40, 200, (48, 96), dtype=np.uint8) for _ in range(2))
    colour_left, colour_right = (draws.integers(40, 200, (48, 96, 3), dtype=np.uint8)
                                 for _ in range(2))
    for view in (grey_left, colour_left):
        view[:, 20:80:9] = 235  # thin bright streaks
    options = {'device': 'cpu', 'threads': 1, 'warmup_shape': None, 'precision': 'fp32'}
    packaged = DerainEngine(EngineConfig(**options))
    general, colour = (DerainEngine(EngineConfig(refiner=str(packaged_weights(name)), **options))
                       for name in ('refiner', 'refiner_colour'))
    grey_as_rgb = [np.repeat(view[..., None], 3, axis=2) for view in (grey_left, grey_right)]
    # A pair with one grey view and one colour view is a colour pair.
    for pair, own, other in (((grey_left, grey_right), general, colour),
                             (grey_as_rgb, general, colour),
                             ((colour_left, colour_right), colour, general),
                             ((grey_as_rgb[0], colour_right), colour, general)):
        out = packaged.derain(*pair)[0]
        assert np.array_equal(out, own.derain(*pair)[0])
        assert not np.array_equal(out, other.derain(*pair)[0])


def _channel_refiner(seed: int) -> Refiner:
    """Return a refiner with one correction per channel whose corrections differ."""
    refiner = Refiner(hidden=8, middle_layers=1, corrections=3)
    torch.manual_seed(seed)
    with torch.no_grad():
        torch.nn.init.normal_(refiner.layers[-1].weight, std=0.05)
    return refiner.eval()


def test_a_refiner_may_correct_each_colour_channel_on_its_own():
    rainy, derained = _views(6)
    with torch.inference_mode():
        assert torch.equal(Refiner(corrections=3)(rainy, derained), derained)
        change = _channel_refiner(0)(rainy, derained) - derained
    assert change.shape == derained.shape
    assert (change[:, 0] - change[:, 1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match='returns 1 or 3 corrections per pixel, not 2'):
        Refiner(corrections=2)


def test_a_grey_correction_grows_to_one_per_channel_that_starts_alike():
    rainy, derained = _views(7)
    refiner = load_refiner()
    grown = grown_refiner(refiner, refiner.config.hidden, refiner.config.middle_layers, 3)
    assert grown.config.corrections == 3
    with torch.inference_mode():
        assert (grown.eval()(rainy, derained) - refiner(rainy, derained)).abs().max() < 1e-6
    with pytest.raises(ValueError, match='returns at least as many corrections'):
        grown_refiner(grown, 16, 5, 1)


def test_grey_views_take_the_mean_of_per_channel_corrections(tmp_path):
    refiner = _channel_refiner(1)
    grey = [(view[:, :1].expand(-1, 3, -1, -1).contiguous()) for view in _views(8)]
    left = refine_views(refiner, grey[0], grey[0], grey[1], grey[1], 'fp32', grey=True)[0]
    assert torch.equal(left[:, 0], left[:, 1]) and torch.equal(left[:, 1], left[:, 2])
    with torch.inference_mode():
        mean = grey[1] + (refiner.layers(refiner.features(*grey)).mean(dim=1, keepdim=True)
                          / GREY_GAIN)
    assert (left - mean).abs().max() < 1e-6
    # Named for the engine, it runs on colour pairs channel by channel, on grey pairs greyly.
    path = save_checkpoint(tmp_path / 'channels.safetensors', refiner)
    assert build_refiner_from_checkpoint(path).config.corrections == 3
    engine = DerainEngine(EngineConfig(device='cpu', threads=1, warmup_shape=None,
                                       refiner=str(path)))
    plain = DerainEngine(EngineConfig(device='cpu', threads=1, warmup_shape=None, refine=False))
    draws = np.random.default_rng(9)
    colour = [draws.integers(40, 200, (48, 96, 3), dtype=np.uint8) for _ in range(2)]
    change = engine.derain(*colour)[0].astype(int) - plain.derain(*colour)[0]
    assert (change.max(axis=2) - change.min(axis=2)).max() > 1
    mono = [np.repeat(view[..., :1], 3, axis=2) for view in colour]
    change = engine.derain(*mono)[0].astype(int) - plain.derain(*mono)[0]
    assert np.abs(change).max() > 1 and (change.max(axis=2) - change.min(axis=2)).max() <= 1


def test_train_refiner_grows_a_grey_correction_to_one_per_channel(tmp_path, capsys):
    from stereo_derain_ros.cli import main
    from stereo_derain_ros.engine import load_checkpoint

    grey = save_checkpoint(tmp_path / 'grey.safetensors', Refiner(hidden=4))
    out = tmp_path / 'channels.safetensors'
    part = ['train-refiner', '--pairs', '1', '--steps', '2', '--hidden', '4', '--threads', '1',
            '--device', 'cpu', '--no-progress', '--pair-kinds', 'medium']
    assert main([*part, '--out', str(out), '--init', str(grey), '--corrections', '3']) == 0
    assert build_refiner_from_checkpoint(out).config.corrections == 3
    assert load_checkpoint(out)[1]['recipe']['corrections'] == 3
    assert main([*part, '--out', str(tmp_path / 'back.safetensors'), '--init', str(out)]) == 2
    assert ('with 5 middle layers and 3 corrections per pixel, larger than --hidden 4 '
            '--middle-layers 5 --corrections 1 ask' in capsys.readouterr().err)


@pytest.mark.skipif(not pixel_layers.CPU_FUSED_CONVOLUTION,
                    reason='this torch lacks oneDNN fused convolutions')
@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_per_channel_corrections_run_fused_as_their_layers_run(monkeypatch, precision):
    """In bf16 the three-map output convolution runs padded to 16 maps: the same corrections."""
    from stereo_derain_ros.engine.precision import cpu_has_native_bf16

    if precision == 'bf16' and not cpu_has_native_bf16():
        pytest.skip('this CPU runs no bf16 in hardware, so the engine never runs it in bf16')
    refiner = _channel_refiner(2).to(memory_format=torch.channels_last)
    features = refiner.features(*_views(10))
    fused = pixel_layers.run_layers(refiner.layers, features, refiner.receptive_radius, precision)
    monkeypatch.setattr(pixel_layers, 'CPU_FUSED_CONVOLUTION', False)
    layer_by_layer = pixel_layers.run_layers(refiner.layers, features, refiner.receptive_radius,
                                             precision)
    assert fused.shape == (1, 3, HEIGHT, WIDTH)
    assert 0.05 < layer_by_layer.float().abs().max()
    tolerance = 1e-6 if precision == 'fp32' else 5e-3
    assert (fused.float() - layer_by_layer.float()).abs().max() < tolerance

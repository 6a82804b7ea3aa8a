"""The prepared device script: a lent GPU gives 15 minutes once, so its commands must work.

Its training and fusion-timing sections run here as written, shrunk to seconds and moved to the
CPU through the environment variables the script reads; only the sizes and the device differ
from the GPU run.
"""

import json
import os
from pathlib import Path
import subprocess
import sys

from stereo_derain_ros.data.photos.collect import collect_photos
from stereo_derain_ros.engine.checkpoint import load_checkpoint

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / 'tools' / 'gpu_script.sh'


def _run(section: str, tmp_path: Path, **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OUT': str(tmp_path / 'out'), 'PYTHON': sys.executable,
           'PYTHONPATH': str(REPO_ROOT), **environment}
    return subprocess.run(['bash', str(SCRIPT), section], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_training_section_fine_tunes_the_packaged_weights_and_returns_the_run(tmp_path):
    photos = tmp_path / 'photos'
    collect_photos(photos, ['skimage'], max_side=256, progress=False)
    result = _run('train_bf16', tmp_path, PHOTOS=str(photos), DEVICE='cpu', TRAIN_STEPS='2',
                  BATCH='1', CROP_SCHEDULE='64x128', POOL='3', VAL_SAMPLES='1', THREADS='1',
                  DATA_WORKERS='1',
                  POOL_CACHE=str(tmp_path / 'pools'))
    assert result.returncode == 0, result.stdout + result.stderr
    run = tmp_path / 'out' / 'gpu_run'
    _, metadata = load_checkpoint(run / 'last.safetensors')
    recipe = metadata['recipe']
    assert recipe['step'] == 2 and recipe['model_args']['pool_window'] == 128
    assert recipe['composition'] == {'rain_free': 0.3}
    assert recipe['loss'] == 'log_l1=0.005,log_mse=0.01,ssim=0.2'
    assert recipe['init'].endswith('weights/bandnet.safetensors') and 'init_recipe' in recipe
    assert (run / 'loss.csv').exists() and (run / 'curves.png').exists()


def test_the_training_section_names_the_missing_photo_cache(tmp_path):
    result = _run('train_bf16', tmp_path, PHOTOS=str(tmp_path / 'nowhere'))
    assert result.returncode != 0
    assert f'no photo cache at {tmp_path / "nowhere"} (carry it)' in result.stdout
    assert not (tmp_path / 'out' / 'gpu_run').exists()


def test_the_view_fusion_section_times_refiner_and_fusion_against_one_pass(tmp_path):
    result = _run('view_fusion_rows', tmp_path, DEVICE='cpu', FUSION_SIZES='128x64', ROUNDS='1')
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads((tmp_path / 'out' / 'view_fusion_cost.json').read_text())['sizes']['128x64']
    assert set(rows) == {'issue-time bandnet', 'fp32 network', 'fp32', 'fp32 view_fusion',
                         'fp16 network', 'fp16', 'fp16 view_fusion'}
    assert (rows['issue-time bandnet']['vs_issue_time'] == rows['fp32 network']['vs_one_pass']
            == 1.0)
    assert 'parts' not in rows['fp32']
    assert set(rows['fp16 view_fusion']['parts']) == {'refiner_both_views', 'sgbm',
                                                      'cue_maps_both_views', 'gate_both_views'}
    assert rows['fp16']['precision'] == 'fp32'  # fp16 runs on CUDA only
    assert ('128x64 (ratios to the issue-time bandnet and to the fp32 network alone):'
            in result.stdout)

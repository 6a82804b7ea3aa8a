"""The demo: replay -> real node process -> recorded output bag, and the report it writes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores

from stereo_derain_ros.bagio.synthetic import make_rain_bag, RainBagConfig
from stereo_derain_ros.cli import main
from stereo_derain_ros.demo import DemoError
from stereo_derain_ros.demo.config import DemoConfig
from stereo_derain_ros.demo.live import record_live_run
from stereo_derain_ros.demo.node_process import (
    isolate_ros_environment,
    node_command,
    running_node,
    wait_until_ready,
    weights_arguments,
)
from stereo_derain_ros.demo.runner import ensure_demo_bag
from stereo_derain_ros.image_codec import image_to_numpy

from conftest import REPO_ROOT

pytestmark = pytest.mark.ros
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
TINY = {'width': 64, 'height': 48, 'duration_s': 1.0, 'rate_hz': 5.0}


def read_bag(path) -> dict[str, list]:
    messages = {}
    with Reader(path) as reader:
        for connection, _, raw in reader.messages():
            messages.setdefault(connection.topic, []).append(
                TYPESTORE.deserialize_cdr(raw, connection.msgtype))
    return messages


def stamp(message) -> int:
    return message.header.stamp.sec * 10**9 + message.header.stamp.nanosec


@pytest.mark.slow
def test_replay_through_the_node_process_records_derained_frames_with_input_stamps(tmp_path):
    bag = tmp_path / 'rainy'
    make_rain_bag(RainBagConfig(output=bag, preset='heavy', **TINY))
    config = DemoConfig(output=tmp_path, untrained=True, device='cpu', **TINY)
    weight_args, _ = weights_arguments(config)
    run = record_live_run(bag, tmp_path / 'recorded', node_command(config, weight_args),
                          tmp_path / 'node.log', isolate_ros_environment(), replay_rate=0.5,
                          drain_timeout_s=10.0)

    inputs, outputs = read_bag(bag), read_bag(tmp_path / 'recorded')
    input_stamps = [stamp(m) for m in inputs['/stereo/left/image_rect']]
    assert len(input_stamps) == 5 and sorted(run.sent) == input_stamps
    for side in ('left', 'right'):
        rainy = {stamp(m): m for m in inputs[f'/stereo/{side}/image_rect']}
        derained = outputs[f'/stereo_derained/{side}/image_rect']
        assert [stamp(m) for m in derained] == input_stamps
        for message in derained:
            source = rainy[stamp(message)]
            assert message.header.frame_id == source.header.frame_id
            pixels, order = image_to_numpy(message)
            assert order == 'rgb' and pixels.shape == (48, 64, 3) and pixels.dtype == np.uint8
            assert not np.array_equal(pixels, image_to_numpy(source)[0])
        infos = outputs[f'/stereo_derained/{side}/camera_info']
        assert [stamp(m) for m in infos] == input_stamps
        assert np.allclose(infos[0].p, inputs[f'/stereo/{side}/camera_info'][0].p)
    assert sorted(run.received) == input_stamps
    assert all(run.received[s] > run.sent[s] for s in input_stamps)
    assert any('demo_derain_node' in status.name
               for message in outputs['/diagnostics'] for status in message.status)
    assert run.diagnostics and run.diagnostics[-1]['model'] == 'bandnet'
    assert not list(tmp_path.glob('recorded.partial-*'))


@pytest.mark.slow
def test_demo_command_writes_the_report_on_a_tiny_configuration(tmp_path, capsys):
    output = tmp_path / 'report'
    status = main(['demo', '--output', str(output), '--size', '96x64', '--duration', '1',
                   '--rate', '5', '--untrained', '--device', 'cpu', '--frames', '2'])
    printed = capsys.readouterr().out
    assert status == 0
    assert f'report: {output / "index.md"}' in printed and 'UNTRAINED' in printed

    metrics = json.loads((output / 'metrics.json').read_text())
    derained = metrics['timing']['sets_derained']
    # paced from the node's own measured time per set, so it keeps up with every set
    assert 'pace: the node takes' in printed and metrics['timing']['node_seconds_per_set'] > 0
    assert derained == metrics['timing']['sets_sent'] == 5
    assert metrics['timing']['latency_ms']['mean'] > 0
    assert metrics['timing']['node_diagnostics']['model'] == 'bandnet'
    summary = metrics['summary']
    for method in ('rainy input', 'stereo_derain_node'):
        assert {'psnr', 'ssim', 'epe', 'bad3'} <= set(summary[method])
    assert summary['rainy input']['psnr'] != summary['stereo_derain_node']['psnr']
    assert len(metrics['frames']) == derained

    pngs = sorted(output.glob('frame_*.png'))
    assert len(pngs) == 2
    with Image.open(pngs[0]) as png:
        assert png.width > 3 * 96 and png.height > 64
    with Image.open(output / 'sequence.gif') as gif:
        assert gif.n_frames == derained
    index = (output / 'index.md').read_text()
    assert 'UNTRAINED WEIGHTS' in index and 'sequence.gif' in index and 'latency' in index
    for name in ('metrics.md', 'sgbm_disparity.png', 'node.log', 'recorded_output/metadata.yaml'):
        assert (output / name).is_file(), name
    assert 'PSNR RGB' in (output / 'metrics.md').read_text()


def test_the_rendered_bag_is_cached_per_configuration(tmp_path):
    config = DemoConfig(output=tmp_path, width=32, height=32, duration_s=0.2, rate_hz=5.0)
    lines = []
    first = ensure_demo_bag(config, lines.append)
    written = (first / 'metadata.yaml').stat().st_mtime_ns
    assert ensure_demo_bag(config, lines.append) == first
    assert (first / 'metadata.yaml').stat().st_mtime_ns == written
    assert 'rendering' in lines[0] and 'reusing' in lines[1]
    config.seed = 1
    assert ensure_demo_bag(config, lines.append) != first


def test_missing_packaged_weights_fail_before_anything_runs(tmp_path, capsys):
    status = main(['demo', '--output', str(tmp_path / 'out'), '--model', 'apanet'])
    error = capsys.readouterr().err
    assert status == 2
    assert "no trained weights are packaged for model 'apanet'" in error and '--untrained' in error
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('overrides, message', [
    ({'width': 16}, 'size must be at least 32x32'),
    ({'duration_s': 0}, 'duration and rate must be > 0'),
    ({'replay_rate': -1.0}, 'replay rate must be > 0'),
    ({'weights': '/nonexistent.safetensors'}, 'weights file /nonexistent.safetensors'),
])
def test_bad_settings_are_named(overrides, message):
    with pytest.raises(DemoError, match=message):
        DemoConfig(**overrides)


@pytest.mark.slow
def test_a_node_that_cannot_start_is_reported_with_its_reason_and_stopped(tmp_path,
                                                                          rclpy_context):
    from rclpy.node import Node

    env = isolate_ros_environment()
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert os.environ['ROS_DOMAIN_ID'] == env['ROS_DOMAIN_ID']
    graph = Node('demo_graph_probe', context=rclpy_context)
    log = tmp_path / 'node.log'
    bad = [sys.executable, '-m', 'stereo_derain_ros.node', '--ros-args', '-p',
           'input_type:=h264', '-p', 'enable:=false']
    try:
        with running_node(bad, log, env) as process:
            with pytest.raises(DemoError, match='exited with status .* input_type must be one of'):
                wait_until_ready(process, graph, timeout_s=60)
        good = [*bad[:-4], '-p', 'enable:=false']
        with pytest.raises(KeyboardInterrupt):
            with running_node(good, log, env) as process:
                raise KeyboardInterrupt
        assert process.poll() is not None
    finally:
        graph.destroy_node()


@pytest.mark.slow
def test_ctrl_c_stops_the_node_and_leaves_no_partial_recording(tmp_path):
    import psutil

    output = tmp_path / 'report'
    process = subprocess.Popen(
        [sys.executable, '-m', 'stereo_derain_ros', 'demo', '--output', str(output), '--size',
         '96x64', '--duration', '4', '--rate', '5', '--untrained', '--replay-rate', '0.2'],
        cwd=tmp_path, env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        log = output / 'node.log'
        while not (log.is_file() and 'ready' in log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, 'node never started'
            time.sleep(0.2)
        node = next(child for child in psutil.Process(process.pid).children()
                    if 'stereo_derain_ros.node' in ' '.join(child.cmdline()))
        process.send_signal(signal.SIGINT)
        printed = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and 'stereo-derain: interrupted' in printed
    assert not node.is_running()
    assert not list(output.glob('recorded_output*'))
    assert (output / 'rainy_demo_96x64_4s_5hz_heavy_seed0' / 'metadata.yaml').is_file()

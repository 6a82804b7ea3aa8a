"""Warning throttling, the one latency summary and the diagnosis of why no sets come out."""

from dataclasses import replace

import pytest

from stereo_derain_ros.node_stats import (
    diagnose,
    latency_summary_ms,
    NodeActivity,
    PhaseTimer,
    PhaseWindows,
    WarningThrottle,
)
from stereo_derain_ros.stereo_sync import SyncCounters

QUIET = NodeActivity(since_input_s=0.1, since_output_s=9.0, published=0, rejected=0,
                     last_rejection='', unstamped=False)
FLOWING = replace(QUIET, since_output_s=0.2, published=10)


def counters(received=(10, 10, 10, 10), completed=0, superseded=0, last_stamps=(5, 5, 5, 5),
             info_timed_out=False) -> SyncCounters:
    return SyncCounters(received=received, completed=completed, superseded=superseded,
                        abandoned=0, resets=0, stale=0, unmatched=(0, 0, 0, 0),
                        last_stamps=last_stamps, info_timed_out=info_timed_out)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_lasting_problem_is_warned_ever_more_rarely_until_it_clears():
    clock = FakeClock()
    throttle = WarningThrottle(period_seconds=5.0, max_period_seconds=40.0, clock=clock)
    allowed = []
    for second in range(0, 200):
        clock.now = float(second)
        if throttle.allow('idle'):
            allowed.append(second)
    assert allowed == [0, 5, 15, 35, 75, 115, 155, 195]
    assert throttle.allow('other')
    throttle.clear('idle')
    assert throttle.allow('idle')


def test_latency_summary_is_in_milliseconds_and_handles_no_samples():
    summary = latency_summary_ms([0.010, 0.020, 0.030])
    assert summary['count'] == 3 and summary['mean'] == pytest.approx(20.0)
    assert summary['p50'] == pytest.approx(20.0) and summary['max'] == pytest.approx(30.0)
    assert latency_summary_ms([]) == {'count': 0, 'mean': None, 'p50': None, 'p95': None,
                                      'max': None}


@pytest.mark.parametrize('sync, activity, level, start', [
    (counters(completed=5), FLOWING, 'ok', 'deraining'),
    (counters(completed=9, superseded=6), FLOWING, 'ok', 'deraining; busy: 6 of 9'),
    (counters(completed=5, info_timed_out=True), FLOWING, 'warn',
     'publishing without camera_info'),
    (counters(received=(30, 30, 10, 30), completed=5), FLOWING, 'warn',
     'images lost in transport: 30 left and 10 right'),
    (counters(received=(0, 0, 0, 0)), replace(QUIET, since_input_s=9.0), 'warn', 'no input yet'),
    (counters(), replace(QUIET, since_input_s=30.0), 'warn', 'idle: no input for 30 s'),
    (counters(received=(10, 10, 0, 0)), QUIET, 'warn',
     'no stereo set published for 9 s: one side missing: nothing received on right image'),
    (counters(last_stamps=(5, 5, 7, 7)), QUIET, 'warn', 'no stereo set published for 9 s: '
     'stamps differ: newest left image 0.000000 s, right image 0.000000 s'),
    (counters(completed=3), replace(QUIET, rejected=3, last_rejection='size mismatch'), 'warn',
     'no stereo set published for 9 s: every set rejected: size mismatch'),
    (counters(completed=1), replace(FLOWING, unstamped=True), 'warn', 'unstamped input'),
    (counters(completed=4, last_stamps=(5, 5, 6, 5)), replace(QUIET, processing_s=7.5), 'warn',
     'no stereo set published for 9 s: busy: the current set has been processing for 7.5 s'),
])
def test_diagnosis_names_the_cause(sync, activity, level, start):
    health = diagnose(sync, activity)
    assert health.level == level and health.summary.startswith(start), health.summary


def test_phases_split_a_set_into_consecutive_durations():
    clock = FakeClock()
    clock.now = 10.5
    timer = PhaseTimer(started=10.0, clock=clock)
    assert timer.mark('wait') == 0.5
    clock.now = 10.75
    timer.mark('decode')
    clock.now = 12.75
    timer.mark('inference')
    assert timer.seconds == {'wait': 0.5, 'decode': 0.25, 'inference': 2.0}
    windows = PhaseWindows()
    windows.add(timer.seconds)
    summaries = {phase: window.summary_ms() for phase, window in windows.windows().items()}
    assert summaries['inference']['p50'] == 2000.0 and summaries['publish']['count'] == 0

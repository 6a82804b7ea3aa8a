"""The stereo synchronizer pairs by stamp, keeps the newest set and survives bad streams."""

import threading

import pytest

from stereo_derain_ros.stereo_sync import (
    AddResult,
    LEFT_IMAGE,
    LEFT_INFO,
    RIGHT_IMAGE,
    RIGHT_INFO,
    StereoSynchronizer,
    SyncConfig,
)

MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def add_set(sync, stamp, right_offset=0, info_offset=0):
    results = [
        sync.add(LEFT_IMAGE, stamp, ('L', stamp)),
        sync.add(LEFT_INFO, stamp + info_offset, ('LI', stamp + info_offset)),
        sync.add(RIGHT_IMAGE, stamp + right_offset, ('R', stamp + right_offset)),
        sync.add(RIGHT_INFO, stamp + right_offset + info_offset, ('RI', stamp + right_offset)),
    ]
    return results


def test_exact_match_emits_one_set_with_all_four_messages():
    sync = StereoSynchronizer(SyncConfig())
    results = add_set(sync, 10 * MS)
    assert results[:3] == [AddResult.STORED] * 3 and results[3] is AddResult.COMPLETED
    stereo_set = sync.take()
    assert stereo_set.stamp_ns == 10 * MS
    assert stereo_set.left_image == ('L', 10 * MS) and stereo_set.right_image == ('R', 10 * MS)
    assert stereo_set.left_info == ('LI', 10 * MS) and stereo_set.right_info == ('RI', 10 * MS)
    assert sync.take() is None


def test_arrival_order_does_not_matter():
    sync = StereoSynchronizer(SyncConfig())
    assert sync.add(RIGHT_INFO, 5, 'ri') is AddResult.STORED
    assert sync.add(RIGHT_IMAGE, 5, 'r') is AddResult.STORED
    assert sync.add(LEFT_INFO, 5, 'li') is AddResult.STORED
    assert sync.add(LEFT_IMAGE, 5, 'l') is AddResult.COMPLETED
    assert sync.take().right_info == 'ri'


def test_exact_sync_rejects_different_stamps():
    sync = StereoSynchronizer(SyncConfig())
    add_set(sync, 10 * MS, right_offset=1)
    assert sync.take() is None
    assert sync.counters().completed == 0


def test_approximate_sync_pairs_within_tolerance_and_rejects_outside():
    sync = StereoSynchronizer(SyncConfig(approximate_sync=True,
                                         approximate_sync_tolerance_seconds=0.005))
    add_set(sync, 100 * MS, right_offset=4 * MS)
    stereo_set = sync.take()
    assert stereo_set is not None
    assert stereo_set.left_image == ('L', 100 * MS)
    assert stereo_set.right_image == ('R', 104 * MS)

    add_set(sync, 200 * MS, right_offset=6 * MS)
    assert sync.take() is None
    assert sync.counters().completed == 1


def test_only_the_newest_set_is_kept_and_replaced_sets_count_as_dropped():
    sync = StereoSynchronizer(SyncConfig(queue_size=5))
    for stamp in (1, 2, 3):
        add_set(sync, stamp * MS)
    stereo_set = sync.take()
    assert stereo_set.stamp_ns == 3 * MS
    counters = sync.counters()
    assert counters.completed == 3 and counters.superseded == 2
    assert sync.take() is None


def test_queues_are_bounded_by_queue_size():
    sync = StereoSynchronizer(SyncConfig(queue_size=3))
    for stamp in range(1, 50):
        sync.add(LEFT_IMAGE, stamp, stamp)
    assert len(sync._queues[LEFT_IMAGE]) == 3
    # only the three newest left images can still be matched
    sync.add(RIGHT_IMAGE, 10, 'r')
    sync.add(LEFT_INFO, 10, 'li')
    sync.add(RIGHT_INFO, 10, 'ri')
    assert sync.take() is None
    add_set(sync, 49)
    assert sync.take().stamp_ns == 49


def test_late_camera_info_older_than_the_last_set_is_stale():
    clock = FakeClock()
    sync = StereoSynchronizer(SyncConfig(camera_info_timeout_seconds=1.0), clock=clock)
    clock.now += 0.1
    sync.add(LEFT_IMAGE, 1 * MS, 'l1')
    clock.now += 5.0
    sync.add(LEFT_IMAGE, 5 * MS, 'l5')
    sync.add(RIGHT_IMAGE, 5 * MS, 'r5')
    clock.now += 1.0
    assert sync.expire()
    assert sync.take().stamp_ns == 5 * MS
    assert sync.add(LEFT_INFO, 3 * MS, 'late info') is AddResult.STALE
    assert sync.counters().stale == 1


def test_stamps_going_backwards_reset_the_queues():
    sync = StereoSynchronizer(SyncConfig())
    add_set(sync, 1000 * MS)
    sync.add(LEFT_IMAGE, 1001 * MS, 'pending left')
    assert sync.add(LEFT_IMAGE, 5 * MS, ('L', 5 * MS)) is AddResult.RESET
    assert sync.counters().resets == 1
    assert sync.take() is None
    results = [sync.add(LEFT_INFO, 5 * MS, 'li'), sync.add(RIGHT_IMAGE, 5 * MS, 'r'),
               sync.add(RIGHT_INFO, 5 * MS, 'ri')]
    assert results[-1] is AddResult.COMPLETED
    assert sync.take().stamp_ns == 5 * MS


def test_only_one_side_arriving_emits_nothing():
    clock = FakeClock()
    sync = StereoSynchronizer(SyncConfig(camera_info_timeout_seconds=1.0), clock=clock)
    for stamp in range(1, 20):
        clock.now += 0.5
        sync.add(LEFT_IMAGE, stamp, 'l')
        sync.add(LEFT_INFO, stamp, 'li')
    assert sync.take() is None
    assert sync.missing_inputs() == ['right image', 'right camera_info']


def test_camera_info_never_arriving_emits_image_pairs_after_the_timeout():
    clock = FakeClock()
    sync = StereoSynchronizer(SyncConfig(camera_info_timeout_seconds=2.0), clock=clock)
    sync.add(LEFT_IMAGE, 1, 'l1')
    sync.add(RIGHT_IMAGE, 1, 'r1')
    clock.now += 1.9
    assert not sync.expire() and sync.take() is None
    assert not sync.counters().info_timed_out
    clock.now += 0.2
    assert sync.expire()
    stereo_set = sync.take()
    assert (stereo_set.left_image, stereo_set.right_image) == ('l1', 'r1')
    assert stereo_set.left_info is None and stereo_set.right_info is None
    assert sync.counters().info_timed_out
    # known missing: the next pair goes out at once instead of waiting again
    sync.add(LEFT_IMAGE, 2, 'l2')
    assert sync.add(RIGHT_IMAGE, 2, 'r2') is AddResult.COMPLETED
    assert sync.take().left_info is None
    # once camera_info flows again, sets wait for it again
    sync.add(LEFT_INFO, 3, 'li3')
    sync.add(RIGHT_INFO, 3, 'ri3')
    sync.add(LEFT_IMAGE, 3, 'l3')
    assert sync.add(RIGHT_IMAGE, 3, 'r3') is AddResult.COMPLETED
    assert not sync.counters().info_timed_out
    sync.add(LEFT_IMAGE, 4, 'l4')
    assert sync.add(RIGHT_IMAGE, 4, 'r4') is AddResult.STORED
    assert sync.take().left_info == 'li3'
    sync.add(RIGHT_INFO, 4, 'ri4')
    assert sync.add(LEFT_INFO, 4, 'li4') is AddResult.COMPLETED
    assert sync.take().right_info == 'ri4'


def test_a_zero_timeout_sends_pairs_at_once_with_the_infos_already_there():
    sync = StereoSynchronizer(SyncConfig(camera_info_timeout_seconds=0.0))
    sync.add(LEFT_INFO, 1, 'li1')
    sync.add(LEFT_IMAGE, 1, 'l1')
    assert sync.add(RIGHT_IMAGE, 1, 'r1') is AddResult.COMPLETED
    stereo_set = sync.take()
    assert (stereo_set.left_info, stereo_set.right_info) == ('li1', None)


# (seconds from the first message, input, stamp) for each arrival order of the node issue.
ARRIVAL_ORDERS = {
    'infos before images': [(0.0, LEFT_INFO, 1), (0.0, RIGHT_INFO, 1), (0.3, LEFT_IMAGE, 1),
                            (0.3, RIGHT_IMAGE, 1)],
    'infos after images': [(0.0, LEFT_IMAGE, 1), (0.0, RIGHT_IMAGE, 1), (0.3, LEFT_INFO, 1),
                           (1.9, RIGHT_INFO, 1)],
    'images of a set 2.5 s apart': [(0.0, LEFT_IMAGE, 1), (0.0, LEFT_INFO, 1),
                                    (2.5, RIGHT_IMAGE, 1), (2.8, RIGHT_INFO, 1)],
    '0.4 Hz camera, infos 0.3 s late': [
        (t + offset, index, stamp) for stamp, t in ((1, 0.0), (2, 2.5), (3, 5.0))
        for offset, index in ((0.0, LEFT_IMAGE), (0.0, RIGHT_IMAGE), (0.3, LEFT_INFO),
                              (0.3, RIGHT_INFO))],
}


@pytest.mark.parametrize('order', ARRIVAL_ORDERS)
def test_infos_with_the_matching_stamp_are_always_attached(order):
    clock = FakeClock()
    start = clock.now
    sync = StereoSynchronizer(SyncConfig(camera_info_timeout_seconds=2.0), clock=clock)
    taken = []
    for at, index, stamp in ARRIVAL_ORDERS[order]:
        clock.now = start + at
        sync.expire()
        sync.add(index, stamp, (index, stamp))
        stereo_set = sync.take()
        if stereo_set is not None:
            taken.append(stereo_set)
    stamps = sorted({stamp for _, _, stamp in ARRIVAL_ORDERS[order]})
    assert [s.stamp_ns for s in taken] == stamps
    for stereo_set in taken:
        assert stereo_set.left_info == (LEFT_INFO, stereo_set.stamp_ns)
        assert stereo_set.right_info == (RIGHT_INFO, stereo_set.stamp_ns)
    assert not sync.counters().info_timed_out


def test_approximate_sync_attaches_each_side_its_nearest_info():
    sync = StereoSynchronizer(SyncConfig(approximate_sync=True))
    add_set(sync, 100 * MS, right_offset=3 * MS, info_offset=1 * MS)
    stereo_set = sync.take()
    assert stereo_set.left_info == ('LI', 101 * MS) and stereo_set.right_info == ('RI', 103 * MS)
    # the next pair does not take an info that belongs to the previous set
    sync.add(LEFT_INFO, 102 * MS, 'old')
    sync.add(LEFT_IMAGE, 200 * MS, 'l')
    sync.add(RIGHT_IMAGE, 200 * MS, 'r')
    sync.add(RIGHT_INFO, 200 * MS, 'ri')
    assert sync.take() is None
    sync.add(LEFT_INFO, 199 * MS, 'li')
    assert sync.take().left_info == 'li'


def test_invalid_configuration_is_rejected_with_the_name():
    with pytest.raises(ValueError, match='queue_size'):
        SyncConfig(queue_size=0)
    with pytest.raises(ValueError, match='approximate_sync_tolerance_seconds'):
        SyncConfig(approximate_sync_tolerance_seconds=-0.1)
    with pytest.raises(ValueError, match='input index'):
        StereoSynchronizer(SyncConfig()).add(7, 0, None)


def test_concurrent_producers_and_consumer_never_mix_stamps():
    sync = StereoSynchronizer(SyncConfig(queue_size=10))
    taken = []
    stop = threading.Event()

    def producer(indices):
        for stamp in range(1, 2001):
            for index in indices:
                sync.add(index, stamp, (index, stamp))

    def consumer():
        while not stop.is_set():
            stereo_set = sync.take()
            if stereo_set is not None:
                taken.append(stereo_set)

    threads = [threading.Thread(target=producer, args=((LEFT_IMAGE, LEFT_INFO),)),
               threading.Thread(target=producer, args=((RIGHT_IMAGE, RIGHT_INFO),))]
    reader = threading.Thread(target=consumer)
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    reader.join()
    final = sync.take()
    if final is not None:
        taken.append(final)
    assert taken
    stamps = [s.stamp_ns for s in taken]
    assert stamps == sorted(set(stamps))
    for stereo_set in taken:
        parts = (stereo_set.left_image, stereo_set.left_info, stereo_set.right_image,
                 stereo_set.right_info)
        assert {stamp for _, stamp in parts} == {stereo_set.stamp_ns}
    counters = sync.counters()
    assert counters.completed == len(taken) + counters.superseded


def test_slow_camera_with_sets_further_apart_than_the_timeout_keeps_its_infos():
    clock = FakeClock()
    sync = StereoSynchronizer(SyncConfig(camera_info_timeout_seconds=2.0), clock=clock)
    for stamp in range(1, 5):
        clock.now += 5.0
        sync.add(LEFT_IMAGE, stamp, 'l')
        sync.add(RIGHT_IMAGE, stamp, 'r')
        clock.now += 0.01
        sync.add(LEFT_INFO, stamp, 'li')
        assert sync.add(RIGHT_INFO, stamp, 'ri') is AddResult.COMPLETED
        stereo_set = sync.take()
        assert (stereo_set.left_info, stereo_set.right_info) == ('li', 'ri')
    assert not sync.counters().info_timed_out

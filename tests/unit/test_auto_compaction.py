"""The auto compaction schedules (etcd 3.5's periodic and revision compactors) and the compaction batch limit."""

from __future__ import annotations

import os

from etcdx.mvcc import rows
from etcdx.mvcc import schema as meta
from etcdx.server.auto_compaction import PeriodicSchedule, RevisionSchedule, schedule_for
from tests.support.store import Store


def _drive(schedule, revisions, start=0.0):
    """Runs the driver's loop over ``revisions`` (the current revision at each step): sample, sleep one
    interval, ask; every compaction succeeds. Returns (time, target) for each compaction."""
    now, done = start, []
    for revision in revisions:
        schedule.sample(revision)
        now += schedule.interval
        target = schedule.due(now, revision)
        if target is not None:
            schedule.succeeded(now, target)
            done.append((round(now, 6), target))
    return done


def test_periodic_compacts_to_the_revision_seen_one_retention_ago():
    schedule = PeriodicSchedule(10.0, now=0.0)  # samples every second, first compaction after 10 s
    assert schedule.interval == 1.0
    done = _drive(schedule, revisions=range(100, 130))  # one revision more each second
    assert done[0] == (10.0, 100)  # the first sample: taken at the start
    assert [t for t, _ in done] == [10.0, 20.0, 30.0]  # then every retention
    assert [r for _, r in done] == [100, 109, 119]  # the oldest of the last 11 samples


def test_periodic_over_an_hour_samples_every_six_minutes_and_compacts_hourly():
    schedule = PeriodicSchedule(5 * 3600.0, now=0.0)
    assert schedule.interval == 360.0
    done = _drive(schedule, revisions=range(1, 200))
    times = [t for t, _ in done]
    assert times[0] == 5 * 3600.0  # the first after the whole retention
    assert times[1] - times[0] == 3600.0  # then hourly
    first_target = done[0][1]
    assert first_target == 1  # five hours of samples (51) are kept: the oldest is the start's


def test_periodic_retries_a_failed_compaction_at_the_next_sample():
    schedule = PeriodicSchedule(10.0, now=0.0)
    for revision in range(10):
        schedule.sample(revision)
    assert schedule.due(10.0, 10) == 0
    # not reported as succeeded: due again at the next step
    schedule.sample(10)
    assert schedule.due(11.0, 11) == 0


def test_revision_mode_keeps_retention_revisions_and_skips_repeats():
    schedule = RevisionSchedule(100, interval=300.0)
    assert schedule.due(0.0, 50) is None  # nothing to compact yet
    assert schedule.due(0.0, 1000) == 900
    schedule.succeeded(0.0, 900)
    assert schedule.due(300.0, 1000) is None  # no write since: the same target is not proposed again
    assert schedule.due(600.0, 1001) == 901


def test_schedule_for_picks_the_mode():
    assert isinstance(schedule_for("periodic", 2.0, 0.0), PeriodicSchedule)
    revision = schedule_for("revision", 5.0, 0.0, revision_interval=1.0)
    assert isinstance(revision, RevisionSchedule) and revision.interval == 1.0


def _committed_meta(store: Store, key: bytes) -> int:
    with store.backend.begin_read() as view:
        return rows.get_meta_int(view, key, -1)


def test_compaction_deletes_in_batches_of_the_limit(tmp_path):
    store = Store("lmdb", os.path.join(tmp_path, "db"))
    try:
        store.kv.compaction_batch_limit = 3
        for n in range(10):
            store.put(b"k", b"v%d" % n)  # revisions 2..11
        assert len(store.stored_revisions()) == 10
        store.compact(11)  # dooms revisions 2..10: 9 rows
        assert store.kv.compact_revision == 11
        assert len(store.stored_revisions()) == 7  # 3 deleted with the compaction's own apply
        assert _committed_meta(store, meta.META_FINISHED_COMPACT) == -1  # not finished yet
        batches = 0
        while store.kv.compaction_pending:
            with store.kv.apply_batch():
                store.kv.continue_compaction()
            store.kv.commit()
            batches += 1
        assert batches == 2
        assert len(store.stored_revisions()) == 1
        assert _committed_meta(store, meta.META_FINISHED_COMPACT) == 11
    finally:
        store.close()


def test_a_restart_finishes_a_compaction_left_in_batches(tmp_path):
    store = Store("lmdb", os.path.join(tmp_path, "db"))
    try:
        store.kv.compaction_batch_limit = 2
        for n in range(6):
            store.put(b"k", b"v%d" % n)
        store.compact(7)
        assert store.kv.compaction_pending
        store.reopen()  # stops between batches
        assert not store.kv.compaction_pending
        assert len(store.stored_revisions()) == 1
        assert _committed_meta(store, meta.META_FINISHED_COMPACT) == 7
    finally:
        store.close()


def test_no_limit_deletes_everything_with_the_compaction(tmp_path):
    store = Store("lmdb", os.path.join(tmp_path, "db"))
    try:
        store.kv.compaction_batch_limit = 0
        for n in range(6):
            store.put(b"k", b"v%d" % n)
        store.compact(7)
        assert not store.kv.compaction_pending
        assert len(store.stored_revisions()) == 1
    finally:
        store.close()

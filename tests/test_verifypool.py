"""Verification in worker processes gives what inline verification gives, once per content."""
from __future__ import annotations

import numpy as np
import pytest

from indexer.match.engine import Matcher, run_job
from indexer.pipeline.verifypool import Verifier
from test_match_engine import jpeg, record, scene


def _jobs():
    base, other = scene(11), scene(12)
    m = Matcher.from_records([record(1, base), record(2, other), record(3, np.fliplr(base).copy())])
    jobs = m.add(record(4, jpeg(base, q=55), sha="new"))
    return m, jobs


def _verdicts(m, done):
    return {(job.a.id, job.b.id): (m.conclude(job, v).verdict if m.conclude(job, v) else None)
            for _, job, v in done}


@pytest.mark.parametrize("pool_after", [float("inf"), 0.0])
def test_pool_and_inline_agree(pool_after):
    m, jobs = _jobs()
    assert len(jobs) >= 2
    expected = {(j.a.id, j.b.id): run_job(j, m.th, m.max_transforms) for j in jobs}
    v = Verifier(m.th, m.max_transforms, workers=2, pool_after=pool_after)
    try:
        for job in jobs:
            v.submit("img4", job)
        done = v.results(block=True)
        assert (v.pool is not None) == (pool_after == 0.0)
    finally:
        v.close()
    assert {(j.a.id, j.b.id) for _, j, _ in done} == set(expected)
    for tag, job, verified in done:
        assert tag == "img4"
        assert verified == expected[(job.a.id, job.b.id)]
    assert _verdicts(m, done)[(1, 4)] == "derived"
    assert _verdicts(m, done)[(3, 4)] == "derived"


def test_same_content_in_flight_runs_once_and_answers_every_waiter():
    m, jobs = _jobs()
    v = Verifier(m.th, m.max_transforms, workers=1, pool_after=0.0)
    v.start(wait_ready=True)
    try:
        for tag in ("first", "second", "third"):
            v.submit(tag, jobs[0])
        assert len(v.in_flight) == 1 and v.pending == 3
        done = v.results(block=True)
        v.submit("later", jobs[0])  # answered from the memo, no new work
        assert not v.in_flight
        done += v.results()
    finally:
        v.close()
    assert [tag for tag, _, _ in done] == ["first", "second", "third", "later"]
    assert len({verified for _, _, verified in done}) == 1


def test_a_dead_worker_costs_nothing(monkeypatch):
    """A pool whose worker died (OOM killer, kill -9) is replaced; the jobs still verify."""
    m, jobs = _jobs()
    v = Verifier(m.th, m.max_transforms, workers=1, pool_after=0.0)
    v.start(wait_ready=True)
    try:
        v.submit("warm", jobs[0])
        v.results(block=True)
        for process in list(v.pool._processes.values()):
            process.kill()
            process.join()
        for job in jobs[1:]:
            v.submit("after", job)
        done = v.results(block=True)
        for job in jobs[1:]:
            v.submit("again", job)
        done += v.results(block=True)
    finally:
        v.close()
    expected = {(j.a.id, j.b.id): run_job(j, m.th, m.max_transforms) for j in jobs[1:]}
    assert len(done) == 2 * len(jobs[1:])
    for _, job, verified in done:
        assert verified == expected[(job.a.id, job.b.id)]


def test_bounded_in_flight():
    m, jobs = _jobs()
    v = Verifier(m.th, m.max_transforms, workers=1, pool_after=0.0, max_pending=1)
    v.start(wait_ready=True)
    try:
        for job in jobs:
            v.submit("x", job)
            assert len(v.in_flight) <= 1
        assert len(v.results(block=True)) + 0 >= 1
    finally:
        v.close()


def test_a_job_that_raises_is_reported_and_the_others_verify(monkeypatch, capsys):
    from indexer.pipeline import verifypool

    m, jobs = _jobs()
    real = verifypool.run_job
    bad = jobs[0]

    def flaky(job, th, max_transforms):
        if job is bad:
            raise ValueError("odd thumbnail")
        return real(job, th, max_transforms)

    monkeypatch.setattr(verifypool, "run_job", flaky)
    v = Verifier(m.th, m.max_transforms, workers=1, pool_after=float("inf"))
    for job in jobs:
        v.submit("x", job)
    done = {(j.a.id, j.b.id): verified for _, j, verified in v.results()}
    assert done[(bad.a.id, bad.b.id)].evidence is None
    assert all(verified.evidence is not None for k, verified in done.items() if k != (bad.a.id, bad.b.id))
    assert "odd thumbnail" in capsys.readouterr().err


def _slow_start_verifier(warm_wait: float):
    """A Verifier whose pool's warm-up finishes when the returned event is set; (verifier,
    matcher, jobs, pools made, gate)."""
    import threading
    from concurrent.futures import Future

    gate = threading.Event()

    class SlowStart:
        def __init__(self, workers):
            self.sent = []

        def submit(self, fn, *args):
            future = Future()
            if fn.__name__ == "warm_up":
                threading.Thread(target=lambda: (gate.wait(10), future.set_result(True))).start()
            else:
                self.sent.append(fn)
                future.set_result(fn(*args))
            return future

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    m, jobs = _jobs()
    pools = []
    v = Verifier(m.th, m.max_transforms, workers=1, pool_after=0.0, warm_wait=warm_wait,
                 executor=lambda n: pools.append(SlowStart(n)) or pools[-1], warm_given=True)
    return v, m, jobs, pools, gate


def test_jobs_wait_aside_for_a_warming_pool_not_in_the_writer():
    """Jobs submitted while a new pool warms up are neither run by the writer (it would
    load the kernels itself: 0.8 s CPU on the dense set) nor block it: they wait aside
    and go to the pool once it is warm."""
    v, m, jobs, pools, gate = _slow_start_verifier(warm_wait=60.0)
    v.submit("early", jobs[0])
    assert v.results() == [] and pools[0].sent == [] and v.spent_inline == 0.0 and v.pending == 1
    gate.set()
    v.warming.result(timeout=10)
    v.submit("late", jobs[1])
    assert pools[0].sent == [run_job, run_job]  # the early one first, then the late one
    assert sorted(t for t, _, _ in v.results(block=True)) == ["early", "late"] and v.spent_inline == 0.0
    v.close()


def test_jobs_wait_for_a_slow_warm_up_only_warm_wait_seconds():
    """A warm-up slower than ``warm_wait`` (a loaded machine) does not hold the jobs: the
    writer verifies them itself meanwhile; so it does when it would block on them (the
    end of a run of a few files: no waiting ~1 s for the warm-up)."""
    v, m, jobs, pools, gate = _slow_start_verifier(warm_wait=60.0)
    v.submit("early", jobs[0])
    assert v.results() == []
    v.warm_wait = 0.0  # as if 60 s had passed
    assert [t for t, _, _ in v.results()] == ["early"] and pools[0].sent == []
    v.warm_wait = 60.0
    v.submit("last", jobs[1])
    assert v.results() == []
    assert [t for t, _, _ in v.results(block=True)] == ["last"] and pools[0].sent == []
    gate.set()
    v.close()


def test_jobs_stay_inline_while_a_new_pool_warms_up():
    """``warm_wait = 0``: the writer does not queue jobs behind workers still importing (a
    57 s stall at load 20 in the watch soak): until the warm-up task is done, jobs run inline."""
    v, m, jobs, pools, gate = _slow_start_verifier(warm_wait=0.0)
    v.submit("warming", jobs[0])
    assert pools and pools[0].sent == [] and [t for t, _, _ in v.results()] == ["warming"]
    gate.set()
    v.warming.result(timeout=10)
    v.submit("warm", jobs[1])
    assert pools[0].sent == [run_job]
    assert [t for t, _, _ in v.results(block=True)] == ["warm"]
    v.close()


def test_a_patient_verifier_waits_for_the_warm_up_at_the_end():
    """``patient`` (an ``index`` run that started the pool at its first job): at the end,
    jobs still waiting for the warm-up wait for it instead of being verified here (which
    would load numba in the writer)."""
    import threading

    v, m, jobs, pools, gate = _slow_start_verifier(warm_wait=60.0)
    v.patient = True
    v.submit("last", jobs[0])
    assert v.results() == []
    threading.Timer(0.2, gate.set).start()
    assert [t for t, _, _ in v.results(block=True)] == ["last"]
    assert pools[0].sent == [run_job] and v.spent_inline == 0.0
    v.close()

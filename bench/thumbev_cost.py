"""Cost and equality of the thumbnails' delta EV of verified pairs: the fast path
(``exposure.thumbev``) against the reference (``exposure.transfer.delta_ev_thumbs``).

    PYTHONPATH=. python bench/thumbev_cost.py JOBS.pkl [--rounds 3]

``JOBS.pkl``: a pickle ``{"jobs": [match.jobs.Job], "th": MatchThresholds, "mt": int}``
of the verification jobs of an ``index`` run (e.g. the dense set of bench/end_to_end.py,
dumped from ``Verifier``). The jobs run once to collect every ``delta_ev_thumbs`` call;
then it prints:
  equal     calls whose ExposureDelta and transfer curve are equal to the bit (all must be)
  per call  ms CPU a call, reference and fast alternately, and their ratio
  jobs      CPU of all jobs with the reference wired in and with the fast path, alternately
"""
from __future__ import annotations

import argparse
import contextlib
import math
import pickle
import time

import numpy as np

from indexer.exposure import pairev, thumbev, transfer
from indexer.match.jobs import run_job

FAST, REFERENCE = thumbev.delta_ev_thumbs, transfer.delta_ev_thumbs


@contextlib.contextmanager
def wired(fn):
    """``pairev.thumb_delta_ev`` calling ``fn`` instead of the fast path."""
    pairev.thumbev.delta_ev_thumbs = fn
    try:
        yield
    finally:
        pairev.thumbev.delta_ev_thumbs = FAST


def same(r, f) -> bool:
    """Both results equal to the bit (NaN equals NaN), curves included."""
    for k in ("delta_ev", "spread_ev", "n_used", "fraction_used"):
        x, y = getattr(r, k), getattr(f, k)
        if not (x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))):
            return False
    return all(getattr(r.curve, k).dtype == getattr(f.curve, k).dtype
               and np.array_equal(getattr(r.curve, k), getattr(f.curve, k))
               for k in ("level_a", "median_b", "count", "usable"))


def collect(jobs, th, mt) -> list:
    calls = []

    def record(a, b, **kw):
        calls.append((a.copy(), b.copy(), kw))
        return REFERENCE(a, b, **kw)

    with wired(record):
        for job in jobs:
            run_job(job, th, mt)
    return calls


def cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jobs", help="pickled verification jobs, e.g. /tmp/jobs.pkl")
    p.add_argument("--rounds", type=int, default=3, help="alternate rounds, e.g. 3")
    args = p.parse_args()
    with open(args.jobs, "rb") as f:
        d = pickle.load(f)
    jobs, th, mt = d["jobs"], d["th"], d["mt"]
    calls = collect(jobs, th, mt)
    shifted = sum(1 for _, _, kw in calls if kw.get("dy") or kw.get("dx"))
    equal = sum(same(REFERENCE(a, b, **kw), FAST(a, b, **kw))
                for a, b, kw in calls)
    print(f"equal     {equal} of {len(calls)} calls ({shifted} with B shifted)")
    for a, b, kw in calls[:20]:  # warm both (numba cache load)
        FAST(a, b, **kw)
    n = len(calls)
    for _ in range(args.rounds):
        ref = cpu(lambda: [REFERENCE(a, b, **kw) for a, b, kw in calls])
        fast = cpu(lambda: [FAST(a, b, **kw) for a, b, kw in calls])
        print(f"per call  reference {ref / n * 1e3:.3f} ms, fast {fast / n * 1e3:.3f} ms, "
              f"ratio {ref / fast:.2f}x")
    for _ in range(args.rounds):
        with wired(REFERENCE):
            ref = cpu(lambda: [run_job(j, th, mt) for j in jobs])
        fast = cpu(lambda: [run_job(j, th, mt) for j in jobs])
        print(f"jobs      {len(jobs)} jobs: reference {ref:.3f} s CPU, fast {fast:.3f} s CPU, "
              f"saved {ref - fast:.3f} s ({(ref - fast) / ref:.0%})")


if __name__ == "__main__":
    main()

"""Candidates and verification jobs per new image as an archive grows (counted, not timed).

Replays the present images of an indexed database (read-only) through a fresh
:class:`~indexer.match.engine.Matcher` in id order, as the matching stage meets them,
and prints per window of ``--window`` arrivals: hash candidates kept per new image
(after corroboration), how many of them the fan-out would verify with candidates in no
group capped at ``--loose`` (the ``[match] loose_tries`` default) and uncapped, and the
largest count of one image. No pixels are verified, so no group forms: every
candidate is treated as in no group; the verdicts come from the database instead (a
planned pair it did not store was rejected: what :mod:`indexer.match.chance` counts to
tighten the radius as the archive grows; ``--chance-budget 0`` turns that off).

    PYTHONPATH=. python bench/match_growth.py /tmp/copy-of-soak.db          # sqlite3 db ".backup copy" first

2026-12-07, a backup of the 100,000-file soak's database while it ran (bench/soak.py,
14,713 images): candidates per image 0.12 (images 0-1,000), 0.47 (2-3k), 1.11 (5-6k),
2.01 (7-8k), 2.41 (10-11k), 3.17 (13-14k), one image up to 71; capped at 4 the jobs per
image 0.12, 0.44, 0.88, 1.26, 1.42, 1.67, never above 4 (at 2: 0.11 ... 1.17). The
candidates keep growing ~0.2 per image per 1,000 indexed; the capped jobs level off at
the cap as nearly every new image has that many chance candidates.

With the chance radius (indexer.match.chance, the verdicts read from the database),
2026-12-07: on those 14,713 images jobs per image 0.13-0.23 in every 2,000-image window;
on the finished 100,000-file soak (``--window 10000``) 0.16, 0.14, 0.15, 0.17, 0.21,
0.22, 0.24, 0.21, 0.20, 0.20, candidates kept 0.19-0.47 per image, the radius 8 bits.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from db.engine import open_engine
from db.pairs import load_records
from sqlalchemy import text
from indexer.config import MatchSettings
from indexer.match import fanout
from indexer.match.engine import Matcher, MatchParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="an indexed SQLite database (opened read-only)")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--loose", type=int, default=MatchSettings().loose_tries)
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N images")
    parser.add_argument("--chance-budget", type=float, default=MatchSettings().chance_budget)
    args = parser.parse_args()
    engine = open_engine(f"sqlite:///{args.db.resolve()}", readonly=True)
    records = load_records(engine)[: args.limit]
    with engine.connect() as conn:
        stored = {(min(a, b), max(a, b)) for a, b in conn.execute(text("select a_id, b_id from pairs"))}
    m = Matcher(MatchParams(chance_budget=args.chance_budget), cache_size=len(records) + 10)
    found, capped, radius = [], [], []
    for rec in records:
        proposals = m.propose_and_add(rec)
        best = {key: min(p.hamming for p in slot.values()) for key, slot in proposals.items()}
        plan = fanout.plan(rec.id, best, {}, loose=args.loose, hits=proposals.hits)
        for key in plan.now:
            if key not in stored and m.chance is not None:
                m.chance.rejected(best[key])  # the run rejected it (or never stored it)
        found.append(len(best))
        capped.append(len(plan.now))
        radius.append(m.chance.radius(len(m.index)) if m.chance is not None else m.crop_radius)
    found_a, capped_a = np.array(found), np.array(capped)
    print(f"{len(records)} images, loose_tries = {args.loose}")
    for k in range(0, len(records), args.window):
        f, c = found_a[k:k + args.window], capped_a[k:k + args.window]
        print(f"images {k:>7}-{k + len(f):<7} candidates/img {f.mean():6.2f} (max {f.max():3})"
              f"   jobs/img capped {c.mean():5.2f} (max {c.max():2})   radius at the end {radius[k + len(f) - 1]}")


if __name__ == "__main__":
    main()

"""Memory the matching stage keeps per image, fed one image at a time (``index`` of a new
archive, ``watch``): the writer's RSS and the hash index's arrays as images are added.

Synthetic records (random hashes, so hardly any candidate pair: this measures what is
held, not verification) go through ``Matcher.propose_and_add`` with a bounded record
cache, as in :class:`~indexer.pipeline.matchstage.MatchStage`. Runs twice, each in a
fresh process: as shipped, and with the index's later-changes dicts never folded into
its arrays (``indexer.match.tables.fold_due`` off: the behaviour before issue 16), and
prints the second's figures as ratios to the first.

    PYTHONPATH=. python bench/match_memory.py --images 60000
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        return int(handle.read().split("VmRSS:")[1].split()[0]) / 1024


def measure(images: int, every: int, fold: bool) -> list[dict]:
    """Feed ``images`` synthetic records; a sample every ``every`` images."""
    from indexer.match import tables
    from indexer.match.engine import Matcher
    from indexer.match.records import MatchRecord

    if not fold:
        tables.fold_due = lambda changes, size: False
    hist = np.zeros((4, 256), np.uint32)

    def synthetic(i: int) -> MatchRecord:
        h = np.random.default_rng(i).integers(-2**63, 2**63 - 1, 19, dtype=np.int64)
        return MatchRecord(id=i, sha256=f"{i:064x}", phash=int(h[0]), phash_d4=h[1:9], phash_crops=h[9:19],
                           thumb=np.zeros((96, 128), np.uint8), hist=hist, width=640, height=480,
                           entropy=7.0, luma_std=0.25, dhash=int(h[0]))

    matcher = Matcher(loader=lambda ids: [synthetic(i) for i in ids], cache_size=1024)
    out, started = [], time.process_time()
    for i in range(1, images + 1):
        matcher.propose_and_add(synthetic(i))
        if i % every == 0:
            gc.collect()
            arrays = sum(v.nbytes for v in matcher.index.state().values())
            out.append({"images": i, "rss_mb": rss_mb(), "arrays_mb": arrays / 2**20,
                        "objects": len(gc.get_objects()), "cpu_s": time.process_time() - started})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--child", choices=["fold", "nofold"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    every = max(1, args.images // 6)
    if args.child:
        print(json.dumps(measure(args.images, every, args.child == "fold")))
        return
    runs = {}
    for mode in ("fold", "nofold"):
        done = subprocess.run([sys.executable, __file__, "--images", str(args.images), "--child", mode],
                              capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{'images':>8} {'RSS MB':>8} {'arrays MB':>10} {'gc objects':>11}   (as shipped; then never folded, ratio)")
    for now, old in zip(runs["fold"], runs["nofold"]):
        print(f"{now['images']:8d} {now['rss_mb']:8.1f} {now['arrays_mb']:10.1f} {now['objects']:11d}   "
              f"{old['rss_mb']:8.1f} MB ({old['rss_mb'] / now['rss_mb']:.2f}x) {old['objects']:9d} objects")
    for mode, samples in runs.items():
        a, b = samples[0], samples[-1]
        span = b["images"] - a["images"]
        print(f"{mode:7}: {1024 * 1024 * (b['rss_mb'] - a['rss_mb']) / span:6.0f} B of RSS and "
              f"{(b['objects'] - a['objects']) / span:5.2f} Python objects per image from {a['images']} to "
              f"{b['images']} images; arrays {2**20 * b['arrays_mb'] / b['images']:.0f} B per image; "
              f"{b['cpu_s']:.0f} s CPU")


if __name__ == "__main__":
    main()

"""Per-pair cost of pixel verification (``indexer.match.verify.compare``), CPU time.

Builds seeded pairs from the 24 Kodak photos (``../shared/data/photos/kodak``): copies
(resize 0.3-0.9, crop keeping 80-95%, shift 1-5% with black fill, exposure +-0.3-1.5 EV,
a rotation or flip, Gaussian blur 1-2 px) and distinct pairs. Each image is reduced to
the indexer's working size (long side 256) and measured with ``features.measure`` for
its 128-px grey thumbnail and histograms. Each pair is compared as the engine first
does (``hinted``: its true scale as the hint; copies then stop), with the full scale
search (``full search``: ``scale_hint=None``), and as the engine's ``run_job`` pays for
a pair with one hint (``as run_job``: the hint, then no hint unless the first call gave
a copy, sharing one ``searched`` memo where the code has it). Prints, per kind of call,
the median and 90th percentile over pairs of the per-call CPU time
(``time.process_time``; each call's minimum over ``--repeat`` runs, as the machine is
shared), and the same for baselines measured in the same run:

* ``plain``: one plain whole-pixel phase correlation of the two thumbnails at one
  scale (numpy complex FFTs, no windowing, no sub-pixel step, no scale search): the
  cost unit of one registration;
* ``--against REV`` (e.g. ``main``): ``compare`` with the verification code
  (:data:`AT_REV`: align, verify and their kernels) as of git revision ``REV`` (loaded
  from ``git show``), timed interleaved with this code pair by pair and turn by turn
  (a load change mid-run falls on both alike), so before/after figures come from one
  run on the same pairs, with the median of the per-pair ratios beside the ratio of
  medians; the
  largest difference of any Evidence field between the two, and the verdicts that
  differ, are printed for copies and for distinct pairs.

    PYTHONPATH=. python bench/verify_cost.py [--data ../shared/data] [--pairs 48] [--repeat 3] [--against main]

Measured 2026-12-07 evening (branch verify6: one sort per side for all rank
correlations, exposure offset's median by counting level pairs, compiled Gaussian blur,
the sub-pixel surface's sums with independent accumulators), three runs ``--against
9d38111 --repeat 5`` (with REV's kernels during the calls, see :func:`compare_at`),
load 18-22, CPU ms per call, median / p90 (ratio of medians, median per-pair ratio):

    run     hinted                     full search                as run_job
    1       4.9 / 14.0 vs 5.4 / 14.9   9.6 / 10.7 vs 10.4 / 11.8  5.1 / 14.6 vs 5.7 / 15.3
            x1.09 (x1.11)              x1.08 (x1.07)              x1.12 (x1.12)
    2       4.8 / 14.0 vs 5.4 / 14.9   9.5 / 10.9 vs 10.2 / 11.6  4.6 / 14.1 vs 5.4 / 15.1
            x1.13 (x1.11)              x1.07 (x1.06)              x1.16 (x1.11)
    3       4.7 / 13.5 vs 5.4 / 14.2   9.2 / 10.5 vs 9.9 / 11.3   4.7 / 14.0 vs 5.2 / 14.9
            x1.15 (x1.10)              x1.08 (x1.08)              x1.11 (x1.11)
    plain 0.6 in all three
    4, load 4.3: hinted 4.4 / 13.0 vs 4.9 / 13.7 x1.12 (x1.11), full search 8.8 / 10.3
       vs 9.7 / 11.0, as run_job 4.5 / 13.7 vs 5.1 / 14.6

Evidence equal to 9d38111's to the bit on all 144 calls of each run, 0 verdicts differ.

Measured 2026-12-07 (issue 13 item 2, the sure-peak stop, counted ranks of levels, one
unhinted search per pair in run_job), interleaved ``--against main`` (7d3d80c), 48
pairs, repeat 3, CPU ms per call, median / p90 (ratio of medians, median per-pair ratio):

    load 10         this            main            ratio
    hinted          5.8 / 18.2      6.7 / 17.4      x1.17  (per pair x1.07)
    full search     11.6 / 14.9     11.4 / 15.3     x0.98  (per pair x1.01)
    as run_job      6.0 / 18.2      7.0 / 30.5      x1.17  (per pair x1.38)
    plain           0.7 / 0.9
    load 5, with neardup_eval.py running beside it (plain 1.0):
    hinted          5.8 / 15.4      6.0 / 15.2      x1.03  (per pair x1.06)
    as run_job      5.7 / 16.5      5.9 / 27.9      x1.02  (per pair x1.45)

    load 8.4, --repeat 5, against 7f18c3f (the same verification code; plain 1.1):
    hinted          4.9 / 13.6      6.2 / 13.4      x1.25  (per pair x1.03)
    full search     9.8 / 11.7      9.8 / 13.6      x1.01  (per pair x1.02)
    as run_job      5.2 / 13.7      6.5 / 22.9      x1.24  (per pair x1.44)

Evidence equal to main's to the bit on all 144 calls, 0 verdicts differ. Copies that
settle at one scale are ~30% sooner; crops and shifts (the median pair) still try three.

Measured 2026-12-03 (issue 13 item 2), shared 2-core machine at load average 7-10,
48 pairs, repeat 3, ``--against main`` (main = ddadb1b), CPU ms per call, median / p90:

    this              main              ratio
    hinted            5.9 / 14.4        18.2 / 28.9      x3.1
    full search       10.7 / 11.8       24.1 / 26.3      x2.3
    plain             0.6 / 0.6

Evidence on the 72 copy calls within 1.4e-5 of main's (rank ties between resampled
values 1e-15 apart), 0 verdicts differ; on the 24 distinct calls the scale may differ
(the fine ladder is climbed from the hint, so a distinct pair can stop at a lower local
peak: peaks 0.06-0.09 instead of 0.08-0.11), 0 verdicts differ. ``neardup_eval.py
--no-scenes --no-negatives``: precision 1.0000, recall 0.9926, per transform the same
as main's (exposure 0.96, text 0.92, the rest 1.00).

Where the time went (cProfile of ``compare`` on these pairs, before: ~22 ms a call):
alignment ~45% (7 fine scales tried per hint, each a resample, two FFTs and a 6x6
sub-pixel surface whose ~15 NumPy calls were mostly overhead), ranks by ``np.unique``
sorts (~20%: 32 tile correlations, plain and blurred, plus whole-overlap ones, three of
them the same ranks), two 3x3 ``median_filter`` s of one array (~10%), two affine
transforms for the warp. Now: the ladder climbed (3-4 scales), resampling, surfaces,
ranks (bucket sort), rank correlations and the median test compiled
(``indexer/match/verify_kernels.py``, ``indexer/measure/align_kernels.py``), shared
intermediates computed once; what is left is ~40 small NumPy/SciPy calls (FFTs, blurs,
morphology), ~2 ms for the alignment and ~3.5 ms for the measures at this load.

Before (2026-12-01, load average 3-5, ``--against`` 50466c5, align.py only):

    default environment       this              50466c5            ratio
      hinted                  19.4 / 42.0       90.3 / 186.2       x4.7
      full search             31.1 / 35.3       113.6 / 128.8      x3.7
      plain                   1.4 / 1.5
    OPENBLAS_NUM_THREADS=1
      hinted                  18.3 / 45.1       25.4 / 53.9        x1.4
      full search             26.3 / 36.7       35.2 / 48.0        x1.3
      plain                   0.8 / 1.3

Most of 50466c5's cost was OpenBLAS threading: its upsampled DFT's complex products
(~0.1-0.3 M multiply-adds) went to threaded zgemm, which on two busy cores spent ~10x
the product's single-thread CPU on thread hand-off.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import inspect
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from indexer.measure import features, orient
from indexer.match import verdict, verify

KINDS = ("resize", "crop", "shift", "exposure", "rotate", "blur", "distinct", "distinct")


def working(img: Image.Image) -> np.ndarray:
    """The indexer's working-size input: long side 256, float32 RGB in [0, 1]."""
    s = 256 / max(img.size)
    small = img.convert("RGB").resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float32) / 255.0


def exposed(img: Image.Image, ev: float) -> Image.Image:
    """``img`` brightened by ``ev`` stops in linear light (IEC 61966-2-1), clipped."""
    v = np.asarray(img, dtype=np.float64) / 255.0
    lin = np.clip(np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4) * 2.0**ev, 0, 1)
    out = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return Image.fromarray(np.clip(np.rint(out * 255), 0, 255).astype(np.uint8))


def variant(kind: str, img: Image.Image, other: Image.Image, rng) -> tuple[Image.Image, str, float]:
    """(second image, transform mapping it onto ``img``'s orientation, scale hint)."""
    w, h = img.size
    if kind == "resize":
        s = rng.uniform(0.3, 0.9)
        return img.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS), "identity", 1.0
    if kind == "crop":
        k = rng.uniform(0.8, 0.95)
        cw, ch = round(w * k), round(h * k)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return img.crop((x0, y0, x0 + cw, y0 + ch)), "identity", 1 / k
    if kind == "shift":
        dx = round(rng.uniform(0.01, 0.05) * w * rng.choice([-1, 1]))
        dy = round(rng.uniform(0.01, 0.05) * h * rng.choice([-1, 1]))
        moved = img.transform(img.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=(0, 0, 0))
        return moved, "identity", 1.0
    if kind == "exposure":
        return exposed(img, rng.uniform(0.3, 1.5) * rng.choice([-1, 1])), "identity", 1.0
    if kind == "rotate":
        t = ("rot90", "rot180", "rot270", "flip_h", "flip_v")[int(rng.integers(0, 5))]
        return Image.fromarray(np.ascontiguousarray(orient.apply(np.asarray(img), t))), orient.inverse(t), 1.0
    if kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.0))), "identity", 1.0
    return other, "identity", 1.0


def build(kodak: Path, n: int, seed: int = 0) -> list[dict]:
    """``n`` pairs as compare() arguments: thumbs, histograms, sizes, transform, hint."""
    rng = np.random.default_rng(seed)
    imgs = [Image.open(p).convert("RGB") for p in sorted(kodak.glob("kodim*.png"))]
    pairs = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        img, other = imgs[i % len(imgs)], imgs[(i * 7 + 5) % len(imgs)]
        b, transform, hint = variant(kind, img, other if other is not img else imgs[(i + 1) % len(imgs)], rng)
        fa, fb = features.measure(working(img)), features.measure(working(b))
        size_a = (round(img.width * 256 / max(img.size)), round(img.height * 256 / max(img.size)))
        size_b = (round(b.width * 256 / max(b.size)), round(b.height * 256 / max(b.size)))
        pairs.append(dict(kind=kind, args=(fa.thumb, fb.thumb, fa.hist, fb.hist),
                          kw=dict(transform=transform, size_a=size_a, size_b=size_b, scale_hint=hint)))
    return pairs


def plain_phase_correlation(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Baseline: one whole-pixel registration of ``b`` onto ``a`` (grey (h, w) arrays,
    ``b`` cropped or zero-padded to ``a``'s shape): numpy complex FFTs, phase
    normalisation, the inverse FFT's peak; (dy, dx)."""
    fb = np.zeros(a.shape)
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    fb[:h, :w] = b[:h, :w]
    product = np.fft.fft2(a - a.mean()) * np.fft.fft2(fb - fb.mean()).conj()
    product /= np.maximum(np.abs(product), 1e-9)
    corr = np.abs(np.fft.ifft2(product))
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    return int(dy), int(dx)


# The modules whose code a verification runs, as of ``--against REV`` (those that exist
# there); imported from one another in this order (a later one's imports of an earlier
# one get the REV version).
AT_REV = ("indexer/measure/smallfilters_kernels.py", "indexer/measure/smallfilters.py",
          "indexer/measure/align_kernels.py", "indexer/match/verify_kernels.py", "indexer/measure/align.py",
          "indexer/match/verify.py")


def compare_at(rev: str):
    """``verify.compare`` with :data:`AT_REV` as of git revision ``rev`` (each loaded from
    ``git show`` as a separate module; any other import is the checked-out one).

    The REV modules stand in for the checked-out ones during each call too, not only
    while they load: the kernels are imported inside the functions that use them (start-up
    of ``index``), and until 2026-12-07 those imports, run at call time, gave REV's code
    this checkout's kernels, so ``--against`` compared new kernels with new kernels."""
    root = Path(__file__).resolve().parents[1]
    loaded: dict[str, types.ModuleType] = {}
    for path in AT_REV:
        done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
        if done.returncode:
            continue  # not at REV
        # numba caches only functions of a real file
        source = done.stdout.replace("cache=True", "cache=False")
        name = path.removesuffix(".py").replace("/", ".")
        module = types.ModuleType(f"{name}_at_{rev}")
        module.__file__ = f"{rev}:{path}"
        sys.modules[module.__name__] = module  # dataclasses look their module up
        with modules_as(loaded):
            exec(compile(source, module.__file__, "exec"), module.__dict__)
        loaded[name] = module
    compare = loaded["indexer.match.verify"].compare

    @functools.wraps(compare)  # keeps the signature: engine_call looks for ``searched``
    def at_rev(*args, **kwargs):
        with modules_as(loaded):
            return compare(*args, **kwargs)

    return at_rev


@contextlib.contextmanager
def modules_as(replacements: dict[str, types.ModuleType]):
    """Imports of the named modules (``import``, ``from package import module``) give the
    replacements, within the block."""
    saved = []
    for name, module in replacements.items():
        parent, _, leaf = name.rpartition(".")
        package = importlib.import_module(parent)
        saved.append((name, sys.modules.get(name), package, leaf, getattr(package, leaf, None)))
        sys.modules[name] = module
        setattr(package, leaf, module)
    try:
        yield
    finally:
        for name, module, package, leaf, attr in reversed(saved):
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
            if attr is None:
                delattr(package, leaf)
            else:
                setattr(package, leaf, attr)


def cpu_ms(fn, repeat: int) -> float:
    """Minimum CPU time of ``fn()`` over ``repeat`` runs, in ms."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best * 1000.0


def summary(ms: list[float]) -> str:
    p90 = float(np.percentile(ms, 90))
    return f"{statistics.median(ms):7.1f} / {p90:6.1f}"


MODES = ("hinted", "full search", "as run_job")


def engine_call(fn, args, kw) -> object:
    """What the engine's ``run_job`` pays for a pair with one hint: ``compare`` with the
    hint, and when that is no copy, again with no hint; one ``searched`` memo for both
    where ``fn`` takes it (code before it searched twice). The last Evidence."""
    takes_memo = "searched" in inspect.signature(fn).parameters
    memo = dict(searched={}) if takes_memo else {}
    ev = fn(*args, **kw, **memo)
    if verdict.classify(ev) in ("derived", "exposure_variant"):
        return ev
    return fn(*args, **dict(kw, scale_hint=None), **memo)


def timed_calls(fns: dict, pairs: list[dict], repeat: int
                ) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[tuple]]]:
    """CPU ms per pair and mode of each implementation in ``fns`` (name -> a function of
    compare's signature), and their Evidence tuples.

    Interleaved: per pair and mode, the implementations take turns ``repeat`` times and
    each keeps its minimum, so a change of machine load during the run falls on both
    sides alike (timing all of one side before the other once showed a 25% gap that was
    only the load moving, 2026-12-07).
    """
    times = {name: {mode: [] for mode in MODES} for name in fns}
    evidence = {name: [] for name in fns}
    for p in pairs:
        for mode, hint in zip(MODES, (p["kw"]["scale_hint"], None, p["kw"]["scale_hint"])):
            kw = dict(p["kw"], scale_hint=hint)
            calls = {name: (functools.partial(engine_call, fn, p["args"], kw) if mode == "as run_job"
                            else functools.partial(fn, *p["args"], **kw)) for name, fn in fns.items()}
            best = dict.fromkeys(fns, float("inf"))
            for _ in range(repeat):
                for name, call in calls.items():
                    best[name] = min(best[name], cpu_ms(call, 1))
            for name, call in calls.items():
                times[name][mode].append(best[name])
                evidence[name].append(dataclasses.astuple(call()))
    return times, evidence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--pairs", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", metavar="REV", help="also time compare() with the verification code from this git revision, interleaved pair by pair")
    args = ap.parse_args()
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(figures from a shared machine scale with it)")
    pairs = build(args.data / "photos" / "kodak", args.pairs)
    plain = [cpu_ms(lambda: plain_phase_correlation(p["args"][0].astype(float), p["args"][1].astype(float)),
                    args.repeat) for p in pairs]
    fns = {"this": verify.compare}
    if args.against:
        fns[args.against] = compare_at(args.against)
    for fn in fns.values():  # compile and load the numba kernels outside the timing
        fn(*pairs[0]["args"], **pairs[0]["kw"])
    times, evs = timed_calls(fns, pairs, args.repeat)
    this, this_ev = times["this"], evs["this"]
    if args.against:
        other, other_ev = times[args.against], evs[args.against]
    print(f"{len(pairs)} pairs ({', '.join(sorted(set(KINDS)))}), 128-px thumbnails, "
          "CPU ms per call, median / p90 over pairs")
    for mode in MODES:
        line = f"  {mode:12s} this {summary(this[mode])}"
        if args.against:
            ratio = statistics.median(other[mode]) / statistics.median(this[mode])
            paired = statistics.median(o / t for o, t in zip(other[mode], this[mode]))
            line += f"    {args.against} {summary(other[mode])}   x{ratio:.2f} (per pair x{paired:.2f})"
        print(line + f"    = x{statistics.median(this[mode]) / statistics.median(plain):.1f} plain")
    print(f"  plain        {summary(plain)}  (one single-scale registration, the baseline unit)")
    if args.against:
        kinds = [p["kind"] for p in pairs for _ in MODES]
        for group in ("copies", "distinct"):
            sel = [(ev, ov) for ev, ov, kind in zip(this_ev, other_ev, kinds) if (kind == "distinct") == (group == "distinct")]
            worst = max(abs(x - y) for ev, ov in sel for x, y in zip(ev, ov) if isinstance(x, float))
            flips = sum(verdict.classify(verify.Evidence(*ev)) != verdict.classify(verify.Evidence(*ov)) for ev, ov in sel)
            print(f"  Evidence this vs {args.against}, {group}: max |field difference| {worst:.2g} over "
                  f"{len(sel)} calls, {flips} verdicts differ")


if __name__ == "__main__":
    main()

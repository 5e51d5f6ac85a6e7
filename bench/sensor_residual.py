"""Per-frame CPU of a rendered frame's sensor delta (issue 17: <= 80 ms for 12 MP), against
a baseline measured in the same run.

The baseline is ``indexer/sensor/kernels.py`` as of a git revision (``--baseline``,
default ``9d38111``: before the strip-wise padding and packed masks), loaded from
``git show`` into a scratch module, plus the work ``delta.rgb_delta`` did around it
then (``np.packbits`` of four bool masks, the residual packing). Rounds alternate
baseline and current on the same 12 MP frame (a Kodak photo resized to 4000 x 3000 with
+-3 codes of noise, so JPEG-like texture everywhere; ``$PHOTOQA_SHARED_DATA`` or
``../shared/data``, else a generated texture), so machine load hits both alike;
CPU is ``time.process_time`` (user + system: page faults count). Both results are
checked equal before timing. With ``--baseline main`` the baseline is what the main
branch's ``rgb_delta`` does (its kernel and packing, and, once the kernel has them, its
stuck-fit samples: each clearly standing-out site's per-channel value and ninther,
issue 17 item 7), checked equal to this checkout's, so the ratio is the speed-up.

    python bench/sensor_residual.py [--baseline REV] [--rounds 7]
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def frame_12mp() -> np.ndarray:
    from PIL import Image

    from indexer.synthetic.camera import generated_scene

    shared = Path(os.environ.get("PHOTOQA_SHARED_DATA") or REPO.parent / "shared" / "data")
    kodak = shared / "photos" / "kodak" / "kodim05.png"
    if kodak.exists():
        with Image.open(kodak) as im:
            base = np.asarray(im.convert("RGB").resize((4000, 3000), Image.BILINEAR))
    else:  # no shared data: a generated texture of the same size
        scene = generated_scene(np.random.default_rng(0), 750, 1000)
        base = np.asarray(Image.fromarray((scene * 255).astype(np.uint8)).resize((4000, 3000), Image.BILINEAR))
    noise = np.random.default_rng(0).integers(-3, 4, base.shape)
    return np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def baseline_delta(rev: str, scratch: Path):
    """The rgb_delta of revision ``rev``: its kernels module + the packing done around it."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:indexer/sensor/kernels.py"],
                            capture_output=True, text=True, check=True).stdout
    path = scratch / "kernels_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("kernels_baseline", path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    from indexer.sensor.delta import packed_residual
    from indexer.sensor.residual import SAMPLE

    # kernels since the stuck fit (issue 17 item 7) also sample the clearest outliers
    sampling = "samples" in inspect.signature(old.rgb_strip_arrays).parameters
    extra = dict(samples=float(SAMPLE)) if sampling else {}

    def delta(frame: np.ndarray):
        residual, _, bright, dark, value, judge, strong, *stood = old.rgb_strip_arrays(
            frame, tile=32, step=2, floor=1.0, margin=3.0, white=255, **extra)
        # kernels before the packed masks returned bool (H, W) arrays; later ones pack
        packed = [np.packbits(a, axis=None) if a.dtype == bool else a for a in (bright, dark, judge, strong)]
        return packed_residual(residual), value, packed, stood

    return delta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="9d38111", help="git revision of the baseline, e.g. main")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds of each, e.g. 7")
    args = parser.parse_args()
    from indexer.sensor.delta import rgb_delta

    frame = frame_12mp()
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_delta(args.baseline, Path(tmp))
        ref, new = old(frame), rgb_delta(frame)  # compiled (or cache loaded) outside the timing
        packed, value, masks, stood = ref
        assert np.array_equal(new.residual, packed["residual"]) and np.array_equal(new.value, value)
        assert not stood or all(np.array_equal(a, getattr(new, n)) for a, n in zip(stood, ("sampled", "stood_v", "stood_m")))
        assert all(np.array_equal(a, getattr(new, n)) for a, n in zip(masks, ("bright", "dark", "judgeable", "strong")))
        times: dict[str, list[float]] = {"baseline": [], "current": []}
        for _ in range(args.rounds):
            for name, fn in (("baseline", old), ("current", rgb_delta)):
                t0 = time.process_time()
                fn(frame)
                times[name].append(time.process_time() - t0)
    best = {k: min(v) * 1e3 for k, v in times.items()}
    median = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[0]
    print(f"12 MP rendered frame, residual + delta, CPU ms/frame (load {load}, {args.rounds} rounds):")
    for name in ("baseline", "current"):
        print(f"  {name:9s} best {best[name]:6.1f}  median {median[name]:6.1f}")
    print(f"  sites that stood out (stuck-fit samples, 6 bytes each): {new.stood_v.shape[0]:,} of {frame.shape[0] * frame.shape[1]:,}")
    print(f"  current / baseline: best {best['current'] / best['baseline']:.2f}x, "
          f"median {median['current'] / median['baseline']:.2f}x (target <= 80 ms)")


if __name__ == "__main__":
    main()

"""Per-pair cost of the exposure comparison: thumbnail path and full-resolution ``diff``.

Prints milliseconds per pair (median of ``--repeat`` runs) and the ratio to the baseline
measured in the same run: a bare Pillow decode of both files of the pair.

    PYTHONPATH=. python bench/exposure_pair_cost.py [--data ../shared/data] [--repeat 3]

Rows:
  thumb     delta EV + transfer curve on 128-px grey uint8 thumbnails (the stored
            ``features.thumb``), decoded with the sRGB LUT; no alignment.
  full      delta EV + transfer curve on the full-resolution pair, already aligned.
  align     the full-resolution alignment alone (coarse-to-fine phase correlation on
            rank-normalised grey, then resampling B).
  compare   diffimages.compare: sRGB decode to linear, align, delta EV, NCC.
  render    drawing all diff outputs and writing them as PNG files.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from indexer.measure import features
from indexer.exposure import diffimages, transfer
from indexer.measure import linear


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs) * 1000.0


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def planted_pair(path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """The photo and a -1.3 EV copy shifted by (3.4, -5.2) px, as files and float arrays."""
    from scipy import ndimage
    a8 = decode(path)
    a_lin = linear.srgb8_to_linear(a8)
    b_lin = np.clip(ndimage.shift(a_lin, (3.4, -5.2, 0), order=1, mode="nearest") * 2**-1.3, 0, 1)
    b8 = np.rint(linear.linear_to_srgb(b_lin) * 255).astype(np.uint8)
    tmp = Path(tempfile.mkdtemp()) / (path.stem + "_b.png")
    Image.fromarray(b8).save(tmp)
    return path, tmp, a8, b8


def pair_rows(name: str, pa: Path, pb: Path, repeat: int) -> None:
    a8, b8 = decode(pa), decode(pb)
    a, b = a8.astype(np.float32) / 255, b8.astype(np.float32) / 255
    base = timed(lambda: (decode(pa), decode(pb)), repeat)
    ta = features.thumbnail(features.luma8(a8), 128)
    tb = features.thumbnail(features.luma8(b8), 128)
    a_lin, b_lin = linear.srgb_to_linear(a), linear.srgb_to_linear(b)
    res = diffimages.compare(a, b)
    out = tempfile.mkdtemp()
    rows = {
        "thumb": timed(lambda: transfer.delta_ev(linear.srgb8_to_linear(ta), linear.srgb8_to_linear(tb)), repeat),
        "full": timed(lambda: transfer.delta_ev(a_lin, res.b_lin, mask=res.aligned.mask), repeat),
        "align": timed(lambda: diffimages.align_pair(a_lin, b_lin), repeat),
        "compare": timed(lambda: diffimages.compare(a, b), repeat),
        "render": timed(lambda: diffimages.write_outputs(diffimages.render(res), out), repeat),
    }
    h, w = a8.shape[:2]
    print(f"{name}: {w}x{h} ({w * h / 1e6:.1f} MP), baseline decode of both files {base:.1f} ms; "
          f"measured delta EV {res.delta.delta_ev:+.3f}, shift ({res.aligned.dy:+.2f}, {res.aligned.dx:+.2f})")
    for key, ms in rows.items():
        print(f"  {key:8s} {ms:9.1f} ms   x{ms / base:6.2f} of decode")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(figures from a shared machine scale with it)")
    kodak = args.data / "photos" / "kodak" / "kodim05.png"
    pa, pb, _, _ = planted_pair(kodak)
    pair_rows("kodim05 vs planted -1.3 EV copy", pa, pb, args.repeat)
    hdr = args.data / "exif-samples" / "jpg" / "hdr"
    for cam in ("canon", "iphone"):
        pair_rows(f"{cam} HDR off/on", hdr / f"{cam}_hdr_NO.jpg", hdr / f"{cam}_hdr_YES.jpg", args.repeat)


if __name__ == "__main__":
    main()

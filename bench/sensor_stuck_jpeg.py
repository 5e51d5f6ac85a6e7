"""Stuck photosites on JPEG frames: what today's detector reports, and which per-site
statistics would tell a stuck site from a hot or dead one (issue 17, item 7; research).

A synthetic RGGB camera (112 x 160, 12 hot + 6 dead sites, and three stuck sites at
18,000 DN, one under each filter colour: mid-grey once developed) shoots 30 frames of
varied scenes; each is developed (bilinear demosaic, sRGB) and encoded as PNG and as
JPEG q95 (Pillow: 4:2:0 chroma) then decoded. For each encoding it prints:

1. what ``classify_defects`` reports at each planted stuck site (the detector as shipped);
2. per planted site, over the 30 frames, the least-squares fit ``v = a + b m`` in linear
   light (sRGB decoded) of the site's value ``v`` on its same-colour neighbourhood
   ninther ``m``: a stuck site has slope b ~ 0 and a large intercept share a / mean(v);
   a hot one b ~ 1 and a > 0; a dead one b = gain, a ~ 0; a clean one b ~ 1, a ~ 0.
   Computed twice: in the channel the kernel picks per frame (largest |r| / noise:
   what the accumulator sees) and in the site's own filter colour (known here only
   because we planted the camera);
3. the same fit's extremes over the clean sites (farther than 3 px from any planted one);
4. the sparse variant a detector could keep: the fit in each colour over only the frames
   in which the site stood out (what a worker could send for those few sites), for the
   sites that stood out in at least half the frames, and which of them pass the rule
   "some colour has slope < 0.6 and intercept share > 0.45" (unknown filter colour:
   any colour may pass).

``--real FOLDER`` runs section 4 on the same-size JPEGs of a real folder instead (one
body's frames, e.g. the shared data's ``exif-samples/jpg/gps``: 9 Nikon frames of
one session), with clipped values and sites whose neighbourhood barely varied
(std of m < 0.05 in linear light) left out: how many clean real sites the rule would
call stuck.

    python bench/sensor_stuck_jpeg.py [--frames 30] [--quality 95] [--real FOLDER]
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

HEIGHT, WIDTH = 112, 160


def camera():
    from indexer.synthetic import camera as synthetic

    return synthetic.stuck_camera(HEIGHT, WIDTH)


def frames(cam, count: int, quality: int | None) -> list[np.ndarray]:
    from PIL import Image

    from indexer.synthetic import camera as synthetic

    rng = np.random.default_rng(4)
    scenes = [synthetic.generated_scene(rng, 160, 224) for _ in range(8)]
    out = []
    for raw in synthetic.camera_frames(cam, scenes, count, seed=2):
        developed = synthetic.develop(raw, cam)
        if quality is None:
            out.append(developed)
            continue
        buf = io.BytesIO()
        Image.fromarray(developed).save(buf, "JPEG", quality=quality)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def _linear(codes: np.ndarray) -> np.ndarray:
    c = np.clip(codes, 0, 255) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _ninther(stack: np.ndarray, step: int = 2) -> np.ndarray:
    """Ninther of the 3x3 same-colour grid ``step`` apart, (F, H, W, C) -> same shape."""
    pad = np.pad(stack, ((0, 0), (step, step), (step, step), (0, 0)), mode="reflect")
    h, w = stack.shape[1:3]

    def at(dy, dx):
        return pad[:, step + dy : step + dy + h, step + dx : step + dx + w]

    rows = [np.median(np.stack([at(dy, -step), at(dy, 0), at(dy, step)]), axis=0) for dy in (-step, 0, step)]
    return np.median(np.stack(rows), axis=0)


def _fit(v: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-site slope and intercept share of v = a + b m over axis 0 (linear light)."""
    vm, mm = v.mean(0), m.mean(0)
    b = ((v - vm) * (m - mm)).mean(0) / np.maximum(m.var(0), 1e-12)
    return b, (vm - b * mm) / np.maximum(vm, 1e-6)


def report(cam, images: list[np.ndarray], label: str) -> None:
    from indexer.config import SensorSettings
    from indexer.sensor import SensorAccumulator, classify_defects
    from indexer.sensor.kernels import rgb_strip_arrays

    acc = SensorAccumulator(HEIGHT, WIDTH, layout="rgb")
    picked_v, picked_r, stood = [], [], []
    for img in images:
        acc.update(img)
        residual, _, bright, dark, value, _, _ = rgb_strip_arrays(img, tile=32, step=2, floor=1.0, margin=3.0,
                                                                  white=255)
        picked_v.append(value.astype(np.int32))
        picked_r.append(residual.astype(np.int32))
        stood.append(np.unpackbits(bright | dark, count=HEIGHT * WIDTH).reshape(HEIGHT, WIDTH).astype(bool))
    found = {(d.y, d.x): d.kind for d in classify_defects(acc, stuck_tests=SensorSettings().stuck_tests())}
    pv = np.array(picked_v)
    b_pick, a_pick = _fit(_linear(pv), _linear(pv - np.array(picked_r)))
    stack = np.array(images, dtype=np.float64)
    b_all, a_all = _fit(_linear(stack), _linear(_ninther(stack)))
    colour = np.array([[0, 1], [1, 2]])  # RGGB -> RGB channel of each site
    clean = np.ones((HEIGHT, WIDTH), bool)
    for y, x in np.concatenate([cam.stuck, cam.hot, cam.dead]):
        clean[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4] = False
    print(f"== {label}")
    print("  detector at the stuck sites (R, G, B):",
          [found.get((int(y), int(x)), "-") for y, x in cam.stuck])
    for kind, sites in (("stuck", cam.stuck), ("hot", cam.hot), ("dead", cam.dead)):
        own = [(b_all[y, x, colour[y % 2, x % 2]], a_all[y, x, colour[y % 2, x % 2]]) for y, x in sites]
        pick = [(b_pick[y, x], a_pick[y, x]) for y, x in sites]
        print(f"  {kind:5s} picked channel (slope, intercept share):", " ".join(f"({b:.2f},{a:.2f})" for b, a in pick))
        print(f"  {kind:5s} own colour     (slope, intercept share):", " ".join(f"({b:.2f},{a:.2f})" for b, a in own))
    for name, b, a in (("picked", b_pick[clean], a_pick[clean]),
                       ("own", np.take_along_axis(b_all, colour[np.arange(HEIGHT)[:, None] % 2,
                                                                 np.arange(WIDTH)[None, :] % 2][..., None], 2)[..., 0][clean],
                        None)):
        extra = f", intercept share max {a.max():.2f}" if a is not None else ""
        print(f"  clean sites ({clean.sum()}), {name}: slope min {b.min():.2f}, 0.1% {np.quantile(b, 0.001):.2f}{extra}")
    sparse_rule(cam, np.array(stood), _linear(stack), _linear(_ninther(stack)), clean)


def sparse_rule(cam, stood: np.ndarray, v: np.ndarray, m: np.ndarray, clean: np.ndarray) -> None:
    """Section 4 of the module docstring: stood (F, H, W) bool, v and m (F, H, W, C) linear."""
    def passing(y, x) -> list[int]:
        sel = stood[:, y, x]
        if sel.sum() < 3:
            return []
        out = []
        for c in range(v.shape[3]):
            b, a = _fit(v[sel, y, x, c], m[sel, y, x, c])
            if b < 0.6 and a > 0.45:
                out.append(c)
        return out

    candidates = stood.sum(0) * 2 >= stood.shape[0]
    print(f"  sparse: sites standing out in >= half the frames: {int(candidates.sum())} of {candidates.size}")
    for kind, sites in (("stuck", cam.stuck), ("hot", cam.hot), ("dead", cam.dead)):
        print(f"  sparse: {kind:5s} colours passing the rule:", [passing(y, x) for y, x in sites])
    ys, xs = np.nonzero(candidates & clean)
    passed = sum(bool(passing(y, x)) for y, x in zip(ys, xs))
    print(f"  sparse: clean candidates passing the rule: {passed} of {ys.size}")


def real_check(folder: Path) -> None:
    """Section 4 on real JPEGs (see the module docstring): prints candidates and passes."""
    from PIL import Image

    from indexer.sensor.kernels import rgb_strip_arrays

    images = []
    for path in sorted(folder.glob("*.jp*g")) + sorted(folder.glob("*.JP*G")):
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("RGB")))
    images = [i for i in images if i.shape == images[0].shape]
    h, w = images[0].shape[:2]
    stood = []
    for img in images:
        _, _, bright, dark, _, _, _ = rgb_strip_arrays(img, tile=32, step=2, floor=1.0, margin=3.0, white=255)
        stood.append(np.unpackbits(bright | dark, count=h * w).reshape(h, w).astype(bool))
    stood_a = np.array(stood)
    stack = np.array(images, dtype=np.float64)
    v, m = _linear(stack), _linear(_ninther(stack))
    ys, xs = np.nonzero(stood_a.sum(0) * 2 >= stood_a.shape[0])
    passed = 0
    for y, x in zip(ys, xs):
        sel = stood_a[:, y, x]
        for c in range(3):
            vc, mc = v[sel, y, x, c], m[sel, y, x, c]
            if sel.sum() < 3 or vc.max() >= 1.0 or mc.std() < 0.05:
                continue
            b, a = _fit(vc, mc)
            if b < 0.6 and a > 0.45:
                passed += 1
                break
    print(f"== real: {folder} ({len(images)} frames of {w}x{h})")
    print(f"  sparse: sites standing out in >= half the frames: {ys.size} of {h * w}; passing the rule: {passed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="frames of the camera, e.g. 30")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality, e.g. 95")
    parser.add_argument("--real", type=Path, help="a folder of one body's JPEGs, e.g. exif-samples/jpg/gps")
    args = parser.parse_args()
    if args.real:
        real_check(args.real)
        return
    cam = camera()
    report(cam, frames(cam, args.frames, None), "PNG (lossless)")
    report(cam, frames(cam, args.frames, args.quality), f"JPEG q{args.quality} (4:2:0)")


if __name__ == "__main__":
    main()

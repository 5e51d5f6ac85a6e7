"""What a pixel digest costs the decode worker, against what it saves (``[match]
digest_decoded_pixels``), CPU time.

For PNG, TIFF (uncompressed, as Pillow saves it) and WebP (lossy, quality 80, as
bench/neardup_eval.py's copies) of one Kodak photo (``../shared/data/photos/kodak``,
else a synthetic scene) scaled to each size, it times in this process, interleaved
turn by turn (a load change falls on all alike), each figure the minimum over
``--repeat`` turns:

* ``decode``: the worker's ``decode.decode_bytes`` at the working size, no digest;
* ``+digest``: the same call computing the pixel digest from the pixels in hand;
* ``pool``: ``decode.pixel_digest(path)``, what a verification process pays for a
  ``same_pixels`` proof without it (a second, full-size decode and the hash).

It prints the digest's extra CPU (ms and ms/MP) and its share of the worker's decode,
and the break-even: the fraction of files needing a proof above which digesting every
file in the worker costs less CPU than digesting those few in the pool.

    PYTHONPATH=. python bench/digest_cost.py [--data ../shared/data] [--sizes 0.4,4,12,24] [--repeat 5]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image

from indexer import decode
from indexer.synthetic import scenes

FORMATS = {"png": (".png", {}), "tiff": (".tif", {}), "webp": (".webp", {"quality": 80})}


def source(data: Path) -> Image.Image:
    photo = data / "photos" / "kodak" / "kodim05.png"
    if photo.exists():
        return Image.open(photo).convert("RGB")
    return Image.fromarray(scenes.scene(5, 768, 512))


def cpu(call) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--sizes", default="0.4,4,12,24", help="megapixels, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = source(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'file':<14} {'MP':>5} {'decode':>8} {'+digest':>8} {'extra':>7} {'ms/MP':>6} {'share':>6} "
              f"{'pool':>8} {'break-even':>10}")
        for mp in (float(s) for s in args.sizes.split(",")):
            scale = (mp * 1e6 / (base.width * base.height)) ** 0.5
            img = base.resize((round(base.width * scale), round(base.height * scale)), Image.Resampling.BICUBIC)
            pixels = img.width * img.height
            for fmt, (suffix, kw) in FORMATS.items():
                path = Path(tmp) / f"{fmt}{mp}{suffix}"
                img.save(path, **kw)
                data = path.read_bytes()
                plain = lambda: decode.decode_bytes(data, path)  # noqa: E731
                hashed = lambda: decode.decode_bytes(data, path, digest_pixels=pixels)  # noqa: E731
                assert hashed().pixel_sha256 == decode.pixel_digest(path)
                runs = {"decode": [], "digest": [], "pool": []}
                for _ in range(args.repeat):
                    runs["decode"].append(cpu(plain))
                    runs["digest"].append(cpu(hashed))
                    runs["pool"].append(cpu(lambda: decode.pixel_digest(path)))
                t = {k: min(v) * 1000 for k, v in runs.items()}
                extra = max(t["digest"] - t["decode"], 0.0)
                print(f"{path.name:<14} {pixels / 1e6:5.1f} {t['decode']:8.1f} {t['digest']:8.1f} {extra:7.1f} "
                      f"{extra / (pixels / 1e6):6.2f} {extra / t['decode']:6.1%} {t['pool']:8.1f} "
                      f"{extra / t['pool']:10.1%}")


if __name__ == "__main__":
    main()

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
file in the worker costs less CPU than digesting those few in the pool. Per size, the
hash alone of the decoded RGB image (``strips``: :func:`indexer.decode.digest.image_digest`;
``tobytes``: one ``tobytes()`` then SHA-256, the definition written plainly), ms/MP.

    PYTHONPATH=. python bench/digest_cost.py [--data ../shared/data] [--sizes 0.4,4,12,24] [--repeat 5]

Measured 2026-12-08 00:37 UTC (branch digestearly, ``--repeat 3``, load 3.7-5.6), CPU ms:

    file        MP  decode  +digest  extra  ms/MP  share  pool   break-even
    png         0.4    8.4      9.4    1.1   2.67  12.7%    8.0  13.4%
    tiff        0.4    2.4      3.3    0.9   2.25  36.9%    1.7  51.7%
    webp        0.4    3.5      4.5    1.0   2.52  29.1%    3.4  29.7%
    png         4.0  116.3    126.5   10.2   2.55   8.8%  117.3   8.7%
    tiff        4.0   18.0     28.1   10.0   2.51  55.6%   16.1  62.4%
    webp        4.0   65.9     75.4    9.5   2.37  14.3%   70.0  13.5%
    png        12.0  324.1    354.9   30.8   2.57   9.5%  339.5   9.1%
    tiff       12.0   73.6    102.6   29.0   2.42  39.4%   89.8  32.3%
    webp       12.0  186.1    219.7   33.6   2.80  18.0%  193.6  17.3%
    png        24.0  597.8    650.9   53.1   2.21   8.9%  616.0   8.6%
    tiff       24.0  130.7    187.4   56.7   2.36  43.4%  153.3  37.0%
    webp       24.0  346.7    406.1   59.4   2.48  17.1%  367.1  16.2%

    hash of RGB, ms/MP   0.4 MP  4 MP  12 MP  24 MP
    strips                 2.29  2.53   2.46   2.46
    one tobytes()          2.23  6.19   5.87   6.82
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from PIL import Image

from indexer import decode
from indexer.decode import digest
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
            strips = min(cpu(lambda: digest.image_digest(img)) for _ in range(args.repeat))
            plain = min(cpu(lambda: hashlib.sha256(digest.header("RGB", *img.size) + img.tobytes()).hexdigest())
                        for _ in range(args.repeat))
            print(f"hash of {pixels / 1e6:.1f} MP RGB: strips {strips * 1e3 / (pixels / 1e6):.2f} ms/MP, "
                  f"one tobytes() {plain * 1e3 / (pixels / 1e6):.2f} ms/MP")
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

"""Fuzz harnesses of everything that parses bytes from a file (issue 16).

The rule every target checks: for any bytes, the call returns a result or raises the
project's own error type (``DecodeError``, ``snapshot.Unusable``,
``AccumulatorFileError``) within a time and memory bound; another exception, a hang
(``TIME_LIMIT`` s) or a crash of the process is a finding.

    python tests/fuzz/harness.py run NAME --seconds 30   # coverage-guided (atheris), else
                                                          # a seeded random-mutation loop
    python tests/fuzz/harness.py replay NAME              # every kept input of NAME
    python tests/fuzz/harness.py list

Inputs that failed are kept in ``tests/fuzz/corpus/NAME/`` (atheris writes its crash,
timeout and out-of-memory inputs there; the mutation loop writes the failing input) and
``tests/test_fuzz_corpus.py`` replays them in the normal suite. Seeds: small files of
``../shared/data`` (when present) and inputs generated here (planted bad files).
"""
from __future__ import annotations

import hashlib
import io
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CORPUS = HERE / "corpus"
TIME_LIMIT = 10  # seconds per input: a decode of a 4 MB file takes < 1 s here
MEMORY_LIMIT = 3 << 30  # bytes of address space (RLIMIT_AS): MemoryError instead of the OOM killer
SEED_MAX = 200_000  # bytes: small seeds mutate faster
sys.path[:0] = [str(REPO), str(REPO / "tests")]


class Hang(Exception):
    """An input took longer than TIME_LIMIT."""


@dataclass
class Target:
    name: str
    call: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    seeds: Callable[[], list[bytes]]


# ---- seeds ------------------------------------------------------------------------------

def shared_files(*folders: str, suffixes: tuple[str, ...] = ()) -> list[bytes]:
    env = os.environ.get("PHOTOQA_SHARED_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    out = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*")) if (root / folder).is_dir() else []:
            if path.is_file() and path.stat().st_size <= SEED_MAX and (not suffixes or path.suffix.lower() in suffixes):
                out.append(path.read_bytes())
    return out[:40]


def planted_images() -> list[bytes]:
    """Small valid files of every format Pillow writes here, and classic bad ones."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = []
    for fmt, kwargs in (("JPEG", {"quality": 80}), ("PNG", {}), ("TIFF", {}), ("WEBP", {}), ("GIF", {}), ("BMP", {})):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, fmt, **kwargs)
        out.append(buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray((rng.integers(0, 65535, (16, 16), dtype=np.uint16))).save(buf, "PNG")  # 16-bit grey
    out.append(buf.getvalue())
    from indexer.decode.tiff16 import tiff16_bytes

    out.append(tiff16_bytes(rng.integers(0, 65535, (16, 20, 3), dtype=np.uint16), make="Canon", model="X"))
    jpeg = out[0]
    out += [b"", jpeg[:3], jpeg[: len(jpeg) // 2], b"\x89PNG\r\n\x1a\n", b"II*\x00" + b"\xff" * 64]
    return out


def raw_seeds() -> list[bytes]:
    return shared_files("raw", suffixes=(".crw", ".cr2", ".nef", ".dng", ".orf", ".raf", ".arw", ".rw2",
                                         ".pef", ".thm", ".srw", ".kdc", ".dcr")) or planted_images()[2:3]


def snapshot_seeds() -> list[bytes]:
    import numpy as np

    from indexer.match import snapshot
    from indexer.match.engine import Matcher, MatchParams
    from test_match_snapshot import rand_rows

    rows = rand_rows(list(range(1, 30)), np.random.default_rng(0))
    m = Matcher.from_rows(rows, MatchParams())
    with tempfile.TemporaryDirectory() as tmp:
        path = snapshot.save(Path(tmp) / "x.match-index", snapshot.state_of(m),
                             {"config": snapshot.config_key(MatchParams()), "mark": {}})
        return [path.read_bytes()]


def accumulator_seeds() -> list[bytes]:
    import numpy as np

    from indexer.sensor import SensorAccumulator

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout, pattern in (("rgb", None), ("cfa", np.array([[0, 1], [3, 2]]))):
            acc = SensorAccumulator(8, 12, layout, pattern)
            frame = np.random.default_rng(1).integers(0, 1000, (8, 12) if layout == "cfa" else (8, 12, 3))
            acc.update(frame.astype(np.uint16), white_level=1023) if layout == "cfa" else acc.update(frame.astype(np.uint8))
            for compress in (False, True):
                acc.save(Path(tmp) / "a.npz", compress=compress)
                out.append((Path(tmp) / "a.npz").read_bytes())
    return out


# ---- targets ----------------------------------------------------------------------------

def _sniff(data: bytes) -> object:
    from indexer.decode import sniff

    return (sniff.sniff(data[:32]), sniff.is_raw(data, ".CR2"), sniff.is_raw(data, ".tif"),
            sniff.tiff_looks_like_camera_raw(data), sniff.is_candidate(Path("x.jpg"), data[:32]),
            sniff.jpeg_payload_digest(data))


def _exif(data: bytes) -> object:
    from indexer.decode import exif
    from indexer.decode.image import MAX_PIXELS, exif_of, open_pillow
    from indexer.decode.raw import raw_metadata
    from indexer.errors import DecodeError

    meta = raw_metadata(data, exif.EMPTY)  # exifread, as for RAW files
    try:
        img = open_pillow(data, MAX_PIXELS)
    except DecodeError:
        return meta
    with img:
        return meta, exif_of(img)  # as decode, diff and repair read it


def _decode(suffix: str):
    def call(data: bytes) -> object:
        from indexer.config import MatchSettings
        from indexer.decode import SensorData, decode_bytes

        # with the pixel digest the decode workers take by default while matching is on
        return decode_bytes(data, Path("fuzz" + suffix), work_size=256, max_pixels=20_000_000,
                            sensor_data=SensorData.ALL, digest_pixels=MatchSettings().digest_decoded_pixels)

    return call


def _raw(data: bytes) -> object:
    from indexer.decode import SensorData, decode_bytes
    from indexer.decode.image import sidecar_meta

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fuzz.THM").write_bytes(data)  # the same bytes as a Canon sidecar
        meta = sidecar_meta(Path(tmp) / "fuzz.CRW")
    return meta, decode_bytes(data, Path("fuzz.CR2"), work_size=256, max_pixels=20_000_000,
                              sensor_data=SensorData.RAW)


def _tiff16(data: bytes) -> object:
    from indexer.decode.image import load_full

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.tif"
        path.write_bytes(data)
        return load_full(path, max_pixels=20_000_000)


def _match_index(data: bytes) -> object:
    from indexer.match import snapshot
    from indexer.match.engine import MatchParams

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.match-index"
        path.write_bytes(data)
        matcher, info = snapshot.load(path, snapshot.config_key(MatchParams()))
        return len(info)


def _accumulator(data: bytes) -> object:
    from indexer.sensor import SensorAccumulator
    from indexer.sensor.accumulator import check_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.npz"
        path.write_bytes(data)
        header = check_file(path)
        return header, SensorAccumulator.load(path).frames


def _targets() -> dict[str, Target]:
    from indexer.errors import DecodeError
    from indexer.match.snapshot import Unusable
    from indexer.sensor import AccumulatorFileError

    images = lambda: planted_images() + shared_files("exif-samples/jpg/invalid", "exif-samples/jpg/tests",  # noqa: E731
                                                     "exif-samples/tiff", "scenes")
    return {t.name: t for t in (
        Target("sniff", _sniff, (), lambda: planted_images() + raw_seeds()[:10]),
        Target("exif", _exif, (DecodeError,), lambda: images() + raw_seeds()[:10]),
        Target("decode", _decode(".jpg"), (DecodeError,), images),
        Target("raw", _raw, (DecodeError,), raw_seeds),
        Target("tiff16", _tiff16, (DecodeError,), lambda: planted_images()[6:8] + shared_files("exif-samples/tiff")),
        Target("match_index", _match_index, (Unusable,), snapshot_seeds),
        Target("accumulator", _accumulator, (AccumulatorFileError,), accumulator_seeds),
    )}


# ---- running ----------------------------------------------------------------------------

def _alarm(_signum, _frame):
    raise Hang(f"more than {TIME_LIMIT} s")


def check(target: Target, data: bytes) -> BaseException | None:
    """Run one input under the rule; returns the violation (None when the rule held)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT)
    try:
        target.call(data)
        return None
    except target.allowed:
        return None
    except Exception as exc:  # noqa: BLE001 - the finding itself (MemoryError and Hang included)
        return exc
    except MemoryError as exc:  # pragma: no cover - MemoryError is an Exception; kept for clarity
        return exc
    finally:
        signal.alarm(0)


def keep(name: str, data: bytes, why: str) -> Path:
    folder = CORPUS / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("finding-" + hashlib.sha1(data).hexdigest()[:16])
    path.write_bytes(data)
    sys.stderr.write(f"fuzz {name}: {why} -> kept as {path}\n")
    return path


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    """One of: flip bits, set interesting bytes, cut, duplicate a slice, splice two seeds."""
    buf = bytearray(data or b"\0")
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        i = rng.randrange(len(buf)) if buf else 0
        if op == 0 and buf:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[i] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        elif op == 2 and len(buf) > 4:
            buf[i + 1 if i + 1 < len(buf) else len(buf):] = b""  # truncate
        elif op == 3 and buf:
            j = min(len(buf), i + rng.randint(1, 64))
            buf[i:i] = buf[i:j]
        elif op == 4 and buf and i + 4 <= len(buf):
            buf[i:i + 4] = rng.choice((b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x7f\xff\xff\xff"))
        elif seeds:
            other = rng.choice(seeds)
            buf = buf[:i] + other[rng.randrange(len(other) or 1):]
    return bytes(buf)


def mutation_loop(target: Target, seconds: float, seed: int = 0) -> int:
    """The fallback without atheris: random mutations of the seeds; returns findings."""
    seeds = target.seeds() or [b""]
    rng, findings, runs, kinds = random.Random(seed), 0, 0, set()
    deadline = time.monotonic() + seconds

    def found(data: bytes, err: BaseException) -> None:
        kind = (type(err).__name__, "".join(c for c in str(err)[:40] if not c.isdigit()))
        if kind not in kinds:  # one input per kind of failure: the corpus stays small
            kinds.add(kind)
            keep(target.name, data, f"{type(err).__name__}: {err}"[:300])

    for data in seeds:  # the seeds themselves first
        if (err := check(target, data)) is not None:
            found(data, err)
            findings += 1
    while time.monotonic() < deadline:
        data = mutate(rng.choice(seeds), rng, seeds)
        runs += 1
        if (err := check(target, data)) is not None:
            found(data, err)
            findings += 1
    sys.stderr.write(f"fuzz {target.name}: {runs} mutated inputs in {seconds:.0f} s, {findings} findings\n")
    return findings


def atheris_run(target: Target, seconds: float) -> int:
    """Coverage-guided: libFuzzer's own time/memory limits, crashes kept in the corpus."""
    import atheris

    with atheris.instrument_imports():
        import indexer.decode  # noqa: F401 - instrument what the targets call
        import indexer.match.snapshot  # noqa: F401
        import indexer.sensor.accumulator  # noqa: F401

    def one(data: bytes) -> None:
        err = check(target, data)
        if err is not None:
            raise err  # libFuzzer records the input as a crash

    work = Path(tempfile.mkdtemp(prefix=f"photoqa-fuzz-{target.name}-"))
    for i, data in enumerate(target.seeds()):
        (work / f"seed-{i}").write_bytes(data)
    folder = CORPUS / target.name
    folder.mkdir(parents=True, exist_ok=True)
    args = [sys.argv[0], str(work), f"-max_total_time={int(seconds)}", f"-timeout={TIME_LIMIT + 5}",
            f"-rss_limit_mb={MEMORY_LIMIT >> 20}", f"-artifact_prefix={folder}/", "-max_len=300000",
            "-print_final_stats=1"]
    atheris.Setup(args, one)
    atheris.Fuzz()  # exits the process (0 when nothing was found)
    return 0


def replay(name: str) -> int:
    """Every kept input of ``name`` under the rule; returns how many still break it."""
    target = _targets()[name]
    bad = 0
    for path in sorted((CORPUS / name).glob("*")) if (CORPUS / name).is_dir() else []:
        err = check(target, path.read_bytes())
        if err is not None:
            sys.stderr.write(f"replay {name}: {path.name}: {type(err).__name__}: {err}\n"[:500])
            bad += 1
    return bad


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "replay", "list"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--plain", action="store_true", help="the mutation loop even when atheris is installed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.action == "list":
        print("\n".join(_targets()))
        return 0
    limit_memory()
    if args.action == "replay":
        names = [args.name] if args.name else list(_targets())
        return 1 if sum(replay(n) for n in names) else 0
    target = _targets()[args.name]
    try:
        import atheris  # noqa: F401
    except ImportError:
        args.plain = True
    if args.plain:
        return 1 if mutation_loop(target, args.seconds, args.seed) else 0
    return atheris_run(target, args.seconds)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

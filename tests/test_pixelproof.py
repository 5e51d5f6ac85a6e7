"""``same_pixels`` proofs: each file fully decoded for its digest at most once, and never
in the writer when it is large (indexer.pipeline.pixelproof, verifypool digests)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from cli import main
from indexer import decode
from indexer.synthetic import scenes as synth


def _run(db: Path, *args) -> str:
    result = CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _same_pixels_copies(folder: Path, names: list[str], seed: int = 31) -> None:
    """PNG/TIFF files of one picture: equal pixels, different bytes (text chunk, container)."""
    folder.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(synth.scene(seed, 320, 240))
    for name in names:
        if name.endswith(".png"):
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            info.add_text("Comment", f"copy {name}")
            img.save(folder / name, pnginfo=info)
        else:
            img.save(folder / name)


def _verdicts(db: Path) -> list[str]:
    (group,) = json.loads(_run(db, "dupes", "--format", "json"))["groups"]
    return sorted(p["verdict"] for p in group["pairs"])


def test_each_file_is_digested_at_most_once_across_runs(tmp_path, monkeypatch):
    calls: Counter[str] = Counter()
    real = decode.pixel_digest

    def counted(path, **kw):
        calls[Path(path).name] += 1
        return real(path, **kw)

    monkeypatch.setattr(decode, "pixel_digest", counted)
    folder, db = tmp_path / "p", tmp_path / "photoqa.db"
    # small files: digested here, counted; none by the decode workers (test_digest_early)
    (tmp_path / "photoqa.toml").write_text("[match]\npool_after = 1e9\ndigest_decoded_pixels = 0\n")
    _same_pixels_copies(folder, ["a.png", "b.png", "c.tif"])
    _run(db, "index", folder, "--workers", "1")
    assert _verdicts(db) == ["same_pixels", "same_pixels"]
    assert calls and max(calls.values()) == 1, calls
    first = dict(calls)
    _same_pixels_copies(folder, ["d.png"])  # a new copy: only it is decoded, the others' digests are stored
    _run(db, "index", folder, "--workers", "1")
    assert _verdicts(db) == ["same_pixels"] * 3
    assert calls - Counter(first) == Counter({"d.png": 1}), calls


def test_large_files_are_digested_by_the_verification_workers_not_the_writer(tmp_path, monkeypatch):
    """``digest_inline_pixels = 0``: every file counts as large. The writer's
    ``pixel_digest`` raises if called; the pair is proven same_pixels all the same, by
    digests computed in the verification pool (worker processes start from a fresh
    interpreter: the patch does not reach them)."""
    def not_here(*a, **k):
        raise AssertionError("the writer decoded a large file for its digest")

    monkeypatch.setattr(decode, "pixel_digest", not_here)
    folder, db = tmp_path / "p", tmp_path / "photoqa.db"
    (tmp_path / "photoqa.toml").write_text("[match]\ndigest_inline_pixels = 0\nverify_workers = 1\n"
                                           "digest_decoded_pixels = 0\n")
    _same_pixels_copies(folder, ["a.png", "b.png"])
    _run(db, "index", folder, "--workers", "1")
    assert _verdicts(db) == ["same_pixels"]


def test_a_mirrored_copy_is_not_decoded_for_a_digest_but_a_retagged_one_is(tmp_path, monkeypatch):
    """Aligned, a mirror looks untouched; its stored pixels cannot equal the original's
    unless the files' EXIF orientations differ (then a digest decides)."""
    import tests.imagefiles as F

    calls: Counter[str] = Counter()
    real = decode.pixel_digest

    def counted(path, **kw):
        calls[Path(path).name] += 1
        return real(path, **kw)

    monkeypatch.setattr(decode, "pixel_digest", counted)
    folder = tmp_path / "p"
    folder.mkdir()
    img = Image.fromarray(synth.scene(41, 320, 240))
    img.save(folder / "a.png")
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "a_mirror.png")
    db = tmp_path / "photoqa.db"
    (tmp_path / "photoqa.toml").write_text("[match]\npool_after = 1e9\ndigest_decoded_pixels = 0\n")
    _run(db, "index", folder, "--workers", "1")
    assert _verdicts(db) == ["derived"] and not calls, calls
    img.save(folder / "a_tagged.png", exif=F.exif_with(orientation=2))  # same stored pixels, shown mirrored
    _run(db, "index", folder, "--workers", "1")
    (group,) = json.loads(_run(db, "dupes", "--format", "json"))["groups"]
    assert "same_pixels" in {p["verdict"] for p in group["pairs"]}, group["pairs"]


def test_what_the_proof_knows_of_images_stays_bounded_and_answers_right(monkeypatch):
    """A daemon answers proofs for months: known paths, digests and payloads are a cache
    of about ``keep`` images (they were one entry per image ever proven), and answers
    after an eviction are the same (digests read again from the database)."""
    from types import SimpleNamespace

    from indexer.pipeline import pixelproof

    looked_up: Counter[int] = Counter()

    def stored(engine, image_id):  # the database: image i holds picture i // 2's pixels
        looked_up[image_id] += 1
        return f"/photos/{image_id}.png", f"digest-{image_id // 2}"

    monkeypatch.setattr(pixelproof.dbpairs, "pixel_digest_of", stored)
    monkeypatch.setattr(pixelproof.decode, "payload_digest", lambda path: None)  # not JPEG: no payload
    proof = pixelproof.PixelProof(None, None, max_pixels=10**8, inline_pixels=0, keep=16)
    rec = lambda i: SimpleNamespace(id=i, width=10, height=10)  # noqa: E731 - what answer() reads
    most = 0
    for i in range(0, 400, 2):
        assert proof.answer(rec(i), rec(i + 1)) is True
        assert proof.answer(rec(i), rec(i + 3)) is False
        most = max(most, len(proof.paths), len(proof.digests), len(proof.payloads))
    assert most <= 16 + 2
    assert proof.answer(rec(0), rec(1)) is True  # long evicted: read again
    assert looked_up[0] == 2

"""`photoqa exposure` and `photoqa diff` end to end, with planted answers.

Measured values (printed with ``pytest -s``) are quoted in the closing report.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import ExifTags, Image

import cli
from cli import main
from indexer.synthetic import scenes as synth
from indexer.exposure.diffimages import OUTPUT_NAMES
from indexer.exposure.flags import FLAG_NAMES


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def exif_bytes(t: float, iso: int, n: float) -> bytes:
    exif = Image.Exif()
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[0x829A], sub[0x8827], sub[0x829D] = t, iso, n
    return exif.tobytes()


def save(path: Path, rgb: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **kw)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """Two dark images, a flat one, a clean one, and a pair whose EXIF says "same
    settings" while the pixels say -1 EV (a flash that did not fire)."""
    root = tmp_path_factory.mktemp("exposure")
    img = root / "img"
    save(img / "dark1.png", synth.change_exposure(synth.scene(1), -4))
    save(img / "dark2.png", synth.change_exposure(synth.scene(2), -5))
    save(img / "flat.png", np.full((300, 400, 3), 90, np.uint8))
    save(img / "clean.png", synth.scene(4))
    base = synth.scene(6)
    save(img / "flash.png", base, exif=exif_bytes(1 / 60, 200, 4.0))
    save(img / "noflash.png", synth.change_exposure(base, -1), exif=exif_bytes(1 / 60, 200, 4.0))
    db = root / "photoqa.db"
    result = invoke("--db", db, "index", "-j", "1", img)
    assert result.exit_code == 0, result.output
    return db


def test_exposure_json_structure(library):
    result = invoke("--db", library, "exposure", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"images", "pairs"}
    names = {Path(im["path"]).name for im in report["images"]}
    assert {"dark1.png", "dark2.png", "flat.png"} <= names and "clean.png" not in names
    for im in report["images"]:
        assert set(im) == {"path", "flags", "ev"} and isinstance(im["ev"], float)
        for f in im["flags"]:
            assert set(f) == {"name", "value", "threshold"} and f["name"] in FLAG_NAMES
    assert len(report["pairs"]) == 1
    pair = report["pairs"][0]
    assert set(pair) == {"a", "b", "delta_ev", "delta_ev_exif"}
    assert (Path(pair["a"]).name, Path(pair["b"]).name) == ("flash.png", "noflash.png")
    print(f"\nflash pair: measured {pair['delta_ev']:+.3f}, EXIF {pair['delta_ev_exif']:+.3f}")
    assert pair["delta_ev"] == pytest.approx(-1.0, abs=0.1)
    assert pair["delta_ev_exif"] == pytest.approx(0.0)


def test_flag_filter(library):
    result = invoke("--db", library, "exposure", "--flag", "dark", "--format", "json")
    assert result.exit_code == 0, result.output
    images = json.loads(result.output)["images"]
    assert {Path(im["path"]).name for im in images} == {"dark1.png", "dark2.png"}
    for im in images:
        assert [f["name"] for f in im["flags"]] == ["dark"]
        assert im["flags"][0]["value"] < im["flags"][0]["threshold"] == pytest.approx(0.32)


def test_unknown_flag_is_a_usage_error(library):
    result = invoke("--db", library, "exposure", "--flag", "darkish")
    assert result.exit_code == cli.EXIT_USAGE
    assert "unknown flag 'darkish'" in result.output and "crushed_shadows" in result.output


def test_table_shows_measured_minus_predicted(library):
    result = invoke("--db", library, "exposure")
    assert result.exit_code == 0, result.output
    assert "flagged images" in result.output and "measured - EXIF" in result.output
    line = next(x for x in result.output.splitlines() if "noflash.png" in x)
    measured, predicted, difference = (float(v) for v in line.split()[-3:])
    assert difference == pytest.approx(measured - predicted, abs=0.011)
    assert difference == pytest.approx(-1.0, abs=0.1)


def test_csv_has_flag_and_pair_rows(library):
    result = invoke("--db", library, "exposure", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    kinds = {r["kind"] for r in rows}
    assert kinds == {"flag", "pair"}
    pair = next(r for r in rows if r["kind"] == "pair")
    assert float(pair["ev_difference"]) == pytest.approx(float(pair["delta_ev"]) - float(pair["delta_ev_exif"]))
    assert any(r["flag"] == "low_information" and r["a"].endswith("flat.png") for r in rows)


@pytest.fixture(scope="module")
def planted_pair(tmp_path_factory) -> tuple[Path, Path]:
    """B = A's content displaced by (-7, +12) px and darkened by 1 EV in linear light."""
    root = tmp_path_factory.mktemp("diff")
    base = synth.scene(8, 720, 560)
    a = base[40:520, 40:680]
    b = synth.change_exposure(base[47:527, 28:668], -1.0)  # b[y, x] = a[y + 7, x - 12]
    return (save(root / "a.png", a, exif=exif_bytes(1 / 100, 100, 8.0)),
            save(root / "b.png", b, exif=exif_bytes(1 / 200, 100, 8.0)))


def test_diff_planted_shift_and_ev(planted_pair, tmp_path):
    a, b = planted_pair
    before = digest(a), digest(b)
    out = tmp_path / "out"
    result = invoke("diff", a, b, "--out", out)
    assert result.exit_code == 0, result.output
    print("\n" + result.output)
    text = result.output
    dx, dy = (float(v) for v in re.search(r"shift: dx ([-+.\d]+) px, dy ([-+.\d]+) px", text).groups())
    # registering B onto A moves it by the opposite of the planted displacement
    assert (dy, dx) == (pytest.approx(7.0, abs=0.5), pytest.approx(-12.0, abs=0.5))
    delta = float(re.search(r"delta EV: ([-+.\d]+)", text).group(1))
    assert delta == pytest.approx(-1.0, abs=0.05)
    assert "EXIF predicts: -1.00 EV" in text
    for name in OUTPUT_NAMES:
        with Image.open(out / f"{name}.png") as im:
            assert im.format == "PNG" and im.size[0] > 0
    assert (digest(a), digest(b)) == before


def test_diff_json(planted_pair, tmp_path):
    a, b = planted_pair
    result = invoke("diff", a, b, "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["dy"] == pytest.approx(7.0, abs=0.5) and s["dx"] == pytest.approx(-12.0, abs=0.5)
    assert s["delta_ev"] == pytest.approx(-1.0, abs=0.05) and s["delta_ev_exif"] == pytest.approx(-1.0)
    assert s["correlation"] > 0.9 and s["encoding"] == "srgb"
    assert [Path(p).stem for p in s["outputs"]] == list(OUTPUT_NAMES)


def test_diff_never_writes_over_an_input(tmp_path):
    folder = tmp_path / "shots"
    a = save(folder / "a_minus_b.png", synth.scene(9, 200, 150))
    b = save(folder / "b.png", synth.change_exposure(synth.scene(9, 200, 150), 1.0))
    before = digest(a)
    result = invoke("diff", a, b, "--out", folder)
    assert result.exit_code == cli.EXIT_ERROR
    assert "over an input" in result.output
    assert digest(a) == before and sorted(p.name for p in folder.iterdir()) == ["a_minus_b.png", "b.png"]


def test_diff_unreadable_and_mismatched_inputs(tmp_path):
    good = save(tmp_path / "good.png", synth.scene(10, 200, 150))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = invoke("diff", good, bad, "--out", tmp_path / "out")
    assert result.exit_code == cli.EXIT_ERROR and "cannot read" in result.output and "bad.jpg" in result.output
    other = save(tmp_path / "other.png", synth.scene(11, 100, 150))
    result = invoke("diff", good, other, "--out", tmp_path / "out")
    assert result.exit_code == cli.EXIT_ERROR and "do not align" in result.output
    assert "delta EV:" not in result.output
    assert not (tmp_path / "out").exists()


def test_diff_kodak_planted(shared_data, tmp_path):
    """A real photo: B = A displaced by (-7, +12) px at +1.5 EV (with clipping)."""
    rgb = np.asarray(Image.open(shared_data / "photos" / "kodak" / "kodim21.png").convert("RGB"))
    a = save(tmp_path / "a.png", rgb[20:492, 20:748])
    b = save(tmp_path / "b.png", synth.change_exposure(rgb[27:499, 8:736], 1.5))
    result = invoke("diff", a, b, "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    print(f"\nkodim21 planted (+7, -12) px, +1.5 EV: measured ({s['dy']:+.2f}, {s['dx']:+.2f}) px, "
          f"{s['delta_ev']:+.3f} EV in {s['seconds']:.2f} s")
    assert s["dy"] == pytest.approx(7.0, abs=0.5) and s["dx"] == pytest.approx(-12.0, abs=0.5)
    assert s["delta_ev"] == pytest.approx(1.5, abs=0.05)


def test_diff_frobisher_bracket(shared_data, tmp_path):
    folder = shared_data / "scenes" / "brackets" / "frobisher_001"
    result = invoke("diff", folder / "IMG_2600.jpg", folder / "IMG_2601.jpg", "--out", tmp_path / "out",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    print(f"\nfrobisher 2600->2601: {s['delta_ev']:+.3f} EV ({s['encoding']}), EXIF {s['delta_ev_exif']:+.2f}, "
          f"shift ({s['dy']:+.2f}, {s['dx']:+.2f}), corr {s['correlation']:.3f}, {s['seconds']:.2f} s")
    assert s["delta_ev_exif"] == pytest.approx(3.0)
    assert abs(s["delta_ev"] - 3.0) < 0.5 and abs(s["dx"]) < 0.5 and abs(s["dy"]) < 0.5


def test_diff_raw_against_srgb(shared_data, tmp_path):
    """Mixed inputs: a RAW (developed linearly) and an sRGB PNG rendered from that
    development at -1 EV; the PNG is linearised, so -1 EV comes back."""
    from indexer.decode import load_full
    from indexer.measure.linear import linear_to_srgb8

    crw = shared_data / "raw" / "digicam_corpus" / "Canon" / "PowerShot_S40" / "CRW_0104.CRW"
    lin = load_full(crw, raw_linear=True)
    assert lin.linear
    png = save(tmp_path / "dark.png", linear_to_srgb8(lin.pixels * 0.5))
    result = invoke("diff", crw, png, "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    print(f"\nS40 CRW vs its sRGB rendering at -1 EV: {s['delta_ev']:+.3f} EV ({s['encoding']}), "
          f"{s['width']}x{s['height']}, {s['seconds']:.2f} s")
    assert s["encoding"] == "linear"
    assert s["delta_ev"] == pytest.approx(-1.0, abs=0.05)
    assert abs(s["dx"]) < 0.5 and abs(s["dy"]) < 0.5


def test_diff_subpixel_shift(tmp_path):
    """B displaced by (-7.5, +12.25) px: a 4x box-downsampled scene cut at offsets 30 and 49
    px apart at full size."""
    big = synth.scene(12, 4 * 340, 4 * 260).astype(np.float32)

    def down(y0, x0):
        crop = big[y0:y0 + 4 * 240, x0:x0 + 4 * 320]
        return np.rint(crop.reshape(240, 4, 320, 4, 3).mean(axis=(1, 3))).astype(np.uint8)

    a = save(tmp_path / "a.png", down(20, 60))
    b = save(tmp_path / "b.png", synth.change_exposure(down(50, 11), 0.7))
    result = invoke("diff", a, b, "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    print(f"\nsub-pixel (+7.5, -12.25) px, +0.7 EV: measured ({s['dy']:+.2f}, {s['dx']:+.2f}) px, "
          f"{s['delta_ev']:+.3f} EV")
    assert s["dy"] == pytest.approx(7.5, abs=0.15) and s["dx"] == pytest.approx(-12.25, abs=0.15)
    assert s["delta_ev"] == pytest.approx(0.7, abs=0.05)

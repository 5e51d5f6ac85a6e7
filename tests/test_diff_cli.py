"""`photoqa diff` on every kind of pair `dupes` reports (resized, rotated, mirrored,
cropped, darker), on unrelated files, and the shared --out rule."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cli
from cli import main
from indexer.commands.demo import write_sample


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    write_sample(folder)
    return folder


@pytest.mark.parametrize("name, transform, scale, ev", [
    ("scene0_copy.jpg", "identity", 1.0, 0.0),
    ("scene0_small.jpg", "identity", 0.5, 0.0),
    ("scene1_rotated.jpg", "rot270", 1.0, 0.0),
    ("scene1_mirror.png", "flip_h", 1.0, 0.0),
    ("scene2_crop.jpg", "identity", 1.0, 0.0),
    ("scene3_dark.jpg", "identity", 1.0, -1.0),
])
def test_every_derived_pair_can_be_diffed(sample, tmp_path, name, transform, scale, ev):
    original = "scene" + name[5] + ".jpg"
    result = invoke("diff", sample / original, sample / name, "--out", tmp_path / "out", "--format", "json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["transform"] == transform
    assert s["scale"] == pytest.approx(scale, rel=0.02)
    assert s["correlation"] > 0.9
    assert s["delta_ev"] == pytest.approx(ev, abs=0.15)
    if name == "scene2_crop.jpg":  # B's top-left corner at (32, 24) in A
        assert (s["width"], s["height"]) == (576, 432)
        assert (s["dx"], s["dy"]) == (pytest.approx(32, abs=0.5), pytest.approx(24, abs=0.5))


def test_rotated_pair_in_text(sample, tmp_path):
    result = invoke("diff", sample / "scene1.jpg", sample / "scene1_rotated.jpg", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "B onto A: rotated 90° clockwise, 1 B pixels per A pixel" in result.output


def test_unrelated_files_do_not_align(sample, tmp_path):
    result = invoke("diff", sample / "scene0.jpg", sample / "scene4.jpg", "--out", tmp_path / "out")
    assert result.exit_code == cli.EXIT_ERROR
    assert "do not align" in result.output and "delta EV:" not in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_non_empty_out_folder_needs_force(sample, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ("diff", sample / "scene0.jpg", sample / "scene0_copy.jpg", "--out", out)
    result = invoke(*args)
    assert result.exit_code == cli.EXIT_ERROR
    assert result.output.strip() == f"photoqa: --out {out} is not empty (use --force to write into it anyway)"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = invoke(*args, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "diff_sum.png").exists() and (out / "notes.txt").read_text() == "mine"

"""docs/SCHEMA.md's measured difference between stored pHashes and imagehash's."""
from __future__ import annotations

import pytest


def test_stored_phash_is_within_two_bits_of_imagehash(shared_data, tmp_path):
    """docs/SCHEMA.md: draft decoding and our resampling move the pHash by 0-2 bits."""
    imagehash = pytest.importorskip("imagehash")
    import sqlite3

    from click.testing import CliRunner
    from PIL import Image, ImageOps

    from cli import main

    folder = shared_data / "scenes" / "brackets"
    db = tmp_path / "h.db"
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "-j", "1"]).exit_code == 0
    rows = sqlite3.connect(db).execute("SELECT path, phash FROM images WHERE format = 'JPEG'").fetchall()
    assert rows
    for path, ours in rows:
        theirs = int(str(imagehash.phash(ImageOps.exif_transpose(Image.open(path)))), 16)
        assert bin(theirs ^ (ours & (1 << 64) - 1)).count("1") <= 2, path

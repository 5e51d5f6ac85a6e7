"""Verdict wording: a greyscale copy is described as one."""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
from test_match_engine import jpeg, record, scene

from indexer.match.engine import Matcher
from indexer.match.verdict import describe
from indexer.match.verify import colour_spread


def pair(a, b):
    found = Matcher.from_records([record(0, a), record(1, b)]).batch_pairs()
    assert len(found) == 1
    return found[0]


def test_greyscale_copy_is_described_as_greyscale():
    base = scene(13)
    grey = np.repeat(np.asarray(Image.fromarray(base).convert("L"))[..., None], 3, axis=2)
    p = pair(base, jpeg(grey, 90))
    assert p.verdict == "derived"
    assert "converted to greyscale" in p.description
    assert "re-encoded" not in p.description
    hist = record(0, grey).hist
    assert colour_spread(hist) == 0.0 and colour_spread(record(0, base).hist) > 3
    ev = dataclasses.replace(p.evidence, colour_a=p.evidence.colour_b, colour_b=p.evidence.colour_a)
    assert "first is a greyscale copy" in describe(ev, "derived")

"""A burst of copies indexed in one run is verified side by side, not one after another.

Planted answer: a picture and seven transformed copies stored in one run while no
verification result comes back to the writer (the pool is slow, or busy decoding). Each
copy's candidates include copies whose own pairs are not stored yet; before, such an
image waited for them whole, so one job was in flight for the whole burst and each
copy cost the writer a round trip after the previous one. Now every copy is sent at
once against the candidate already stored (or its closest pending one), and the held
pairs are dropped once their partners end in the group the copy joined: still one
group of eight, still at most 2 x 7 verifications.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from db import pairs as dbpairs
from indexer.pipeline import matchstage, verifypool
from indexer.pipeline.run import index_paths
from indexer.session import open_session
from indexer.synthetic import scenes as synth

_COPIES = {
    "b_mirror.jpg": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "c_rot90.png": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "d_half.jpg": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "e_rot180.jpg": lambda im: im.transpose(Image.Transpose.ROTATE_180),
    "f_q60.jpg": lambda im: im,
    "g_flipv.jpg": lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "h_copy.png": lambda im: im,
}


class _Holding(verifypool.Verifier):
    """Verifies as usual but gives the writer no result until ``hold`` is cleared (or it
    blocks for them, as :meth:`MatchStage.close` does); counts the jobs sent."""

    hold = True
    sent = 0

    def submit(self, tag, job):
        type(self).sent += 1
        super().submit(tag, job)

    def results(self, *, block=False):
        if type(self).hold and not block:
            return []
        return super().results(block=block)


def test_a_burst_of_copies_is_sent_at_once_and_still_makes_one_group(tmp_path: Path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    original = Image.fromarray(synth.scene(321, 384, 288))
    original.save(folder / "a_original.jpg", quality=95)
    for name, make in _COPIES.items():
        img = make(original)
        img.save(folder / name, **({} if name.endswith(".png") else {"quality": 60 if "q60" in name else 90}))
    (tmp_path / "photoqa.toml").write_text("[match]\npool_after = 1e9\npool_files = 0\n")  # inline: deterministic
    monkeypatch.setattr(matchstage, "Verifier", _Holding)
    _Holding.hold, _Holding.sent = True, 0
    session = open_session(str(tmp_path / "photoqa.db"))
    stage = matchstage.MatchStage(session)
    index_paths([folder], session.store, session.settings.index, workers=1, stages=[stage])
    copies = len(_COPIES)
    # every copy was sent without waiting for another's result (before: 1 job, the rest held)
    assert _Holding.sent >= copies, _Holding.sent
    _Holding.hold = False
    stage.close()
    assert _Holding.sent <= 2 * copies, _Holding.sent
    ids = dbpairs.group_ids(session.engine, range(1, 100))
    assert len(ids) == copies + 1 and len(set(ids.values())) == 1, ids
    session.engine.dispose()

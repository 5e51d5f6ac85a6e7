"""A refresh also repairs groups another writer left out of step with the pairs: an
image its walk reaches that is filed under a group none of its seeds belongs to has
that whole group regrouped (the other members included, even those no pair reaches)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, text

from db import groups as dbgroups
from db.models import Pair
from db.records import utcnow
from indexer.synthetic import scenes as synth
from PIL import Image
from test_groups_current import index, new_session, recomputed, stored


def test_a_group_filed_elsewhere_is_regrouped_whole(tmp_path: Path):
    root = tmp_path / "photos"
    root.mkdir()
    for seed in range(4):  # four different pictures: no pairs, no groups
        Image.fromarray(synth.scene(40 + seed, 128, 96)).save(root / f"p{seed}.png")
    session = new_session(tmp_path)
    try:
        index(session, root)
        with session.engine.begin() as conn:
            a, b, c, d = conn.execute(text("SELECT id FROM images ORDER BY path")).scalars()
            assert not conn.execute(text("SELECT count(*) FROM pairs")).scalar()
            # planted: pairs a-b, b-c; c and d filed as one group with no pair between them
            conn.execute(insert(Pair), [dict(a_id=min(x, y), b_id=max(x, y), verdict="derived", hamming=2,
                                             transform="identity", correlation=0.99, match_version=2,
                                             found_at=utcnow()) for x, y in ((a, b), (b, c))])
            conn.execute(text("INSERT INTO image_groups (image_id, group_id, is_keeper) VALUES "
                              "(:c, :d, false), (:d, :d, true)"), {"c": c, "d": d})
            now = dbgroups.refresh_groups(conn, {a}, session.settings.group_rule())
        groups = stored(session)
        assert groups == recomputed(session)
        assert {m for m, _, _ in groups} == {a, b, c}  # d's stale row went with its group
        assert now[d] is None and {now[x] for x in (a, b, c)} == {next(iter(groups))[1]}
    finally:
        session.engine.dispose()

"""Which frames a camera body learns from: a budget that keeps learning cheap.

Learning from a rendered frame (JPEG, HEIC, PNG, TIFF) costs a full-size decode plus the
per-site residual: on a 12 MP JPEG about 6x what indexing the file costs otherwise (a
draft decode at 1/8 scale and the features). So a body learns from a *sample* of its
frames, sized so that the extra work stays a small share of indexing:

- a frame of ``P`` megapixels is learnt with probability ``min(1, sample_megapixels / P)``:
  on average each indexed frame pays for ``sample_megapixels`` of learning, whatever
  the camera. Small frames are always learnt (0.25 MP: every frame up to 500x500);
  a 12 MP phone learns 1 frame in 48, so a 10,000-photo archive rests on ~200 frames;
- frames where defects show most (``iso >= reveal_iso`` or an exposure of at least
  ``reveal_seconds``: hot pixels grow with gain and exposure time) are ``reveal_factor``
  times as likely;
- a new body can be mapped in full first: every frame until it rests on ``learn_first``
  frames (0 by default: counted when a run starts, from the database);
- the draw is the frame's SHA-256 read as a number in [0, 1): the same frames are learnt
  in every run, every process, and by ``index`` and ``watch`` alike, and a copy of a
  frame is never learnt twice (the writer's ledger counts each content once).

Defaults live in ``[sensor]`` (:class:`indexer.config.SensorSettings`).
"""
from __future__ import annotations


def learn_share(megapixels: float, *, sample_megapixels: float, iso: int | None,
                exposure_time: float | None, reveal_iso: int, reveal_seconds: float,
                reveal_factor: float) -> float:
    """Probability in [0, 1] that a frame of ``megapixels`` (> 0) is learnt."""
    share = sample_megapixels / max(megapixels, 1e-9)
    revealing = (iso is not None and iso >= reveal_iso) or (
        exposure_time is not None and exposure_time >= reveal_seconds)
    if revealing:
        share *= reveal_factor
    return min(1.0, share)


def drawn(sha256: str, share: float) -> bool:
    """Whether the frame with this SHA-256 (hex) falls in a sample of ``share``: its first
    64 bits as a fraction of 2**64 below ``share`` (SHA-256 bits are uniform)."""
    if share >= 1.0:
        return True
    return int(sha256[:16], 16) < share * 2.0**64

"""``same_pixels`` proofs for the matching stage, without full decodes in the writer.

A pair whose bytes differ but whose thumbnails look untouched (same size, no shift,
correlation ~1) is ``same_pixels`` only if the full-size decoded pixels are equal. Two
ways to know, cheapest first:

1. equal JPEG payloads (the coded image without its metadata:
   :func:`indexer.decode.payload_digest`): a read of both files and a hash, no decode;
2. equal full-size pixel digests (:func:`indexer.decode.pixel_digest`), stored in
   ``images.pixel_sha256`` once computed, so a file is fully decoded for this at most once.
   The decode worker stores it with the row when it decoded the file at full size anyway
   (``[match] digest_decoded_pixels``: PNG, TIFF, WebP... not RAW, nor a draft-decoded
   JPEG). A missing digest is computed by the verification workers
   (:meth:`~indexer.pipeline.verifypool.Verifier.submit_digest`), never by the writer
   unless the file is small (``[match] digest_inline_pixels``) and no pool runs yet.

:meth:`PixelProof.answer` says True/False when it knows and None while a digest is
being computed; the stage parks such a pair and asks again after :meth:`collect`.
"""
from __future__ import annotations

from sqlalchemy import Engine

from db import pairs as dbpairs
from indexer import decode
from indexer.match.records import MatchRecord
from indexer.pipeline.verifypool import Verifier


KEEP = 4096  # images whose path, digest and payload are kept in memory, at most (~0.4 kB each)


class PixelProof:
    """Known pixel digests and JPEG payloads of images, and the digests being computed.

    ``max_pixels``: the decode limit (``[index] max_pixels``); ``inline_pixels``: files
    of at most this many pixels may be digested in the writer before the pool starts.
    What it knows is a cache of about ``keep`` images (the first known dropped
    first, never one whose digest is being computed): digests are also in
    ``images.pixel_sha256``, and a payload is read again if asked again. Unbounded, a
    daemon kept ~0.4 kB for every image that ever needed a proof (~5% of a soak's)."""

    def __init__(self, engine: Engine, verifier: Verifier, *, max_pixels: int, inline_pixels: int,
                 keep: int = KEEP):
        self.engine, self.verifier = engine, verifier
        self.max_pixels, self.inline_pixels, self.keep = max_pixels, inline_pixels, keep
        self.paths: dict[int, str] = {}
        self.digests: dict[int, str | None] = {}  # known: a digest, or None (cannot be decoded)
        self.payloads: dict[int, str | None] = {}
        self.asked: set[int] = set()

    def _stored(self, image_id: int) -> None:
        if image_id not in self.paths:
            path, digest = dbpairs.pixel_digest_of(self.engine, image_id)
            self.paths[image_id] = path
            if digest:
                self.digests[image_id] = digest

    def _payload(self, image_id: int) -> str | None:
        if image_id not in self.payloads:
            try:
                self.payloads[image_id] = decode.payload_digest(self.paths[image_id])
            except (decode.DecodeError, OSError):
                self.payloads[image_id] = None
        return self.payloads[image_id]

    def answer(self, a: MatchRecord, b: MatchRecord) -> bool | None:
        """Do ``a`` and ``b`` hold the same full-size pixels? None: not known yet (the
        missing digests were asked for; call again after :meth:`collect`)."""
        self._make_room()
        for rec in (a, b):
            self._stored(rec.id)
        pa = self._payload(a.id)
        if pa is not None and pa == self._payload(b.id):
            return True  # same coded JPEG data: same pixels, no decode needed
        missing = [rec for rec in (a, b) if rec.id not in self.digests]
        if not missing:
            return self.digests[a.id] is not None and self.digests[a.id] == self.digests[b.id]
        for rec in missing:
            if rec.id not in self.asked:
                self.asked.add(rec.id)
                self.verifier.submit_digest(rec.id, self.paths[rec.id], max_pixels=self.max_pixels,
                                            inline=rec.width * rec.height <= self.inline_pixels)
        return None

    def collect(self, *, block: bool = False) -> bool:
        """Take in the digests computed meanwhile (stored in SQL); True if any arrived."""
        arrived = self.verifier.digests(block=block)
        for image_id, digest in arrived:
            self.digests[image_id] = digest
            self.asked.discard(image_id)
            if digest:
                dbpairs.set_pixel_digest(self.engine, image_id, digest)
        return bool(arrived)

    def _make_room(self) -> None:
        """At ``keep`` images known: drop the oldest half of those not being digested
        (called before a pair's two images are looked up, so they stay)."""
        if len(self.paths) < self.keep:
            return
        for image_id in [i for i in self.paths if i not in self.asked][:max(1, self.keep // 2)]:
            self.forget(image_id)

    def forget(self, image_id: int) -> None:
        """``image_id`` was indexed again: its file may have changed."""
        for known in (self.paths, self.digests, self.payloads):
            known.pop(image_id, None)

"""Exposure QA: per-image flags, exposure differences within a pair, diff outputs.

Modules: :mod:`.linear` (sRGB / BT.709 <-> linear, luminance, EV), :mod:`.flags`
(per-image checks), :mod:`.transfer` (transfer curve and delta EV of an aligned pair,
EXIF prediction, RAW CFA comparison), :mod:`.diffimages` (alignment and PNG outputs
of ``photoqa diff``). Everything here is pure: arrays and numbers in, dataclasses or
Pillow images out; only :func:`.diffimages.write_outputs` touches the filesystem.
"""
from indexer.exposure.flags import FLAG_NAMES, FLAGS_VERSION, Flag, FlagThresholds
from indexer.exposure.transfer import (CfaDelta, EncodedDelta, ExposureDelta, TransferCurve,
                                       curve_bend, delta_ev, delta_ev_cfa, delta_ev_encoded,
                                       delta_ev_exif, delta_ev_thumbs, transfer_curve)

__all__ = ["FLAG_NAMES", "FLAGS_VERSION", "Flag", "FlagThresholds", "CfaDelta", "EncodedDelta",
           "ExposureDelta", "TransferCurve", "curve_bend", "delta_ev", "delta_ev_cfa",
           "delta_ev_encoded", "delta_ev_exif", "delta_ev_thumbs", "transfer_curve"]

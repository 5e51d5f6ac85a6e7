"""Exposure QA: per-image flags, exposure differences within a pair, diff outputs.

Modules: :mod:`.linear` (sRGB / BT.709 <-> linear, luminance, EV), :mod:`.flags`
(per-image checks), :mod:`.transfer` (transfer curve and delta EV of an aligned pair,
EXIF prediction, RAW CFA comparison), :mod:`.diffimages` (alignment and PNG outputs
of ``photoqa diff``). Everything here is pure: arrays and numbers in, dataclasses or
Pillow images out; only :func:`.diffimages.write_outputs` touches the filesystem.
"""
import importlib

# Loaded on first use (PEP 562): transfer pulls in scipy, which reading settings
# (indexer.config imports flags) must not pay.
_FLAGS = ("FLAG_NAMES", "FLAGS_VERSION", "Flag", "FlagThresholds")


def __getattr__(name: str):
    if name in __all__:
        module = "flags" if name in _FLAGS else "transfer"
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = ["FLAG_NAMES", "FLAGS_VERSION", "Flag", "FlagThresholds", "CfaDelta", "EncodedDelta",
           "ExposureDelta", "TransferCurve", "curve_bend", "delta_ev", "delta_ev_cfa",
           "delta_ev_encoded", "delta_ev_exif", "delta_ev_thumbs", "transfer_curve"]

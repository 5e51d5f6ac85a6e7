"""Sensor health: per-camera photosite statistics, defect maps, export and repair.

Pure array code (arrays in, dataclasses out). The database, the ``index`` pipeline and the
CLI call into these modules; nothing here touches SQL or image decoders.

- :mod:`.residual`    per-frame residual against same-colour neighbours, local noise, outliers
- :mod:`.kernels`     the same residual of rendered frames, compiled (numba)
- :mod:`.accumulator` per-sensor running statistics (Welford + counters), exact merge, atomic files
- :mod:`.defects`     hot / dead / stuck classification
- :mod:`.budget`      which frames a camera body learns from (mapping share, then a sample)
- :mod:`.dating`      how precise a defect's first date is when frames were skipped
- :mod:`.export`      dcraw/LibRaw and RawTherapee ``.badpixels`` text
- :mod:`.repair`      CFA and demosaiced-image repair
- :mod:`.synthetic`   synthetic cameras with planted defects (tests, demo, bench)
"""
from indexer.sensor.accumulator import AccumulatorFileError, SensorAccumulator
from indexer.sensor.defects import Defect, NotEnoughFrames, classify_defects, defect_mask
from indexer.sensor.export import (dcraw_badpixels, defect_map, export_badpixels,
                                   rawtherapee_badpixels, rawtherapee_filename)
from indexer.sensor.repair import blob_mask, repair_blobs, repair_cfa, repair_rgb, unrepaired
from indexer.sensor.residual import FrameResidual, ResidualParams, cfa_residual, rgb_residual

__all__ = [
    "AccumulatorFileError",
    "blob_mask",
    "repair_blobs",
    "Defect",
    "FrameResidual",
    "NotEnoughFrames",
    "ResidualParams",
    "SensorAccumulator",
    "cfa_residual",
    "classify_defects",
    "dcraw_badpixels",
    "defect_map",
    "defect_mask",
    "export_badpixels",
    "rawtherapee_badpixels",
    "rawtherapee_filename",
    "repair_cfa",
    "repair_rgb",
    "rgb_residual",
    "unrepaired",
]

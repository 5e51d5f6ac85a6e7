"""Imported by the export pool's forkserver before it forks the workers: the compiled
8-bit resize and equalisation (:mod:`indexer.stacks.resample_kernels`,
:mod:`indexer.stacks.normalize_kernels`) loaded once, so every worker inherits them ready.

Loaded in a worker they cost ~0.2 s of CPU to import numba and ~0.32 s for the resize's
first call to find and load its cached machine code (2026-12-07), per worker per export; here
once per export. Without a cache the call compiles it (a few seconds, once: the cache is
then written). Whatever goes wrong is swallowed: the forkserver must start (a worker
then loads the kernel on its first photo).
"""
from __future__ import annotations


def _warm() -> None:
    try:
        import numpy as np

        from indexer.stacks.normalize import equalize_padded8
        from indexer.stacks.resample import fit_rgb8

        row = fit_rgb8(np.zeros((12, 16, 3), np.uint8), 8, 8)[None]  # the same argument types as any photo's call
        equalize_padded8(row, np.zeros((1, 8, 8), bool), np.empty(row.shape, np.float32))
    except Exception:  # noqa: BLE001 - see the module docstring: the forkserver must start
        pass


_warm()

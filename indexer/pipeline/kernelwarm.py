"""Imported by the workers' forkserver before it forks them: loads the compiled sensor
kernels once, so every decode worker inherits them loaded.

A worker that learns its first rendered frame otherwise loads numba and the cached
machine code itself: ~0.65 s of CPU each (numba 0.27 s, the ``scipy.linalg`` numba's
registries import to find BLAS 0.22 s, the cached kernels 0.15 s; 2026-12-07), paid
once per worker per run. Loaded in the forkserver it is paid once per run whatever the
worker count, and the verification and alignment kernels the same workers load find
numba already imported. A missing cache is compiled here, once, instead of in every
worker. Whatever goes wrong is swallowed: the forkserver must start (a worker then
loads the kernels itself, as before).

:func:`indexer.pipeline.pools.preload` names this module; ``pipeline.run`` asks for it
when the plan learns from rendered frames.
"""
from __future__ import annotations


def _warm() -> None:
    try:
        import numpy as np

        from indexer.sensor.delta import rgb_delta

        rgb_delta(np.zeros((64, 64, 3), np.uint8))
    except Exception:  # noqa: BLE001 - see the module docstring: the forkserver must start
        pass


_warm()

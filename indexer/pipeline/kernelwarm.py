"""Imported by the workers' forkserver before it forks them: loads the compiled sensor
kernels once, so every decode worker inherits them loaded.

A worker that learns its first rendered frame otherwise loads numba and the cached
machine code itself: ~0.65 s of CPU each (numba 0.27 s, the ``scipy.linalg`` numba's
registries import to find BLAS 0.22 s, the cached kernels 0.15 s; 2026-12-07), paid
once per worker per run. Loaded in the forkserver it is paid once per run whatever the
worker count, and the verification and alignment kernels the same workers load find
numba already imported. Only machine code already cached is loaded here: compiling
(~5-13 s) would delay every run, learning or not, while no worker is forked; without a
cache a worker that learns compiles, as before (and fills the cache). Whatever goes
wrong is swallowed: the forkserver must start (a worker then loads the kernels itself).

:func:`indexer.pipeline.pools.preload` names this module; ``pipeline.run`` asks for it
when the plan learns from rendered frames: for an ``index`` run of two files or more, and
for ``watch``'s long-lived pool (``run.start_pool``) always, as the workers it forks to
replace dead ones inherit it too.
"""
from __future__ import annotations


def _warm() -> None:
    try:
        import numpy as np

        from indexer.sensor import kernels
        from indexer.sensor.delta import rgb_delta

        if kernels.rgb_kernels_cached():  # machine code on disk: loading it compiles nothing
            rgb_delta(np.zeros((64, 64, 3), np.uint8))  # the 8-bit RGB signature frames use
    except Exception:  # noqa: BLE001 - see the module docstring: the forkserver must start
        pass


_warm()

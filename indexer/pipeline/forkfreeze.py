"""Imported last by a forkserver that :func:`indexer.pipeline.pools.prestart` started, and
only there: what its preload made (NumPy, Pillow, the decoders: modules that live as
long as the process) goes to the collector's permanent generation now and at exit.

Its workers, forked from it, then never traverse those objects in a collection (nor
touch their pages: copy-on-write stays shared), and the forkserver's own exit skips
the interpreter's last full collections over them: ~0.03 s CPU of ~0.2 s
(``python -c "import indexer.pipeline.analyse"`` with and without, 6 runs each,
2026-12-07). A forkserver runs no code of its own after its preload but forking, so
nothing it holds needs finalising at exit (workers end with ``os._exit``).
"""
from __future__ import annotations

import atexit
import gc

gc.freeze()
atexit.register(gc.freeze)

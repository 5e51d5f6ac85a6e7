"""Array stacks and datasets, pure math: arrays in, arrays and dataclasses out.

``resample`` (Pillow's Lanczos as matrices, for batches), ``framehash`` (pHash, dHash,
D4 and crop hashes of a batch of frames), ``frames`` (per-frame measurements of a batch),
``pixelstats`` (per-pixel Welford statistics over a stack, Chan merge, count histograms),
``sites`` (hot and dead sites of a detector from them), ``normalize`` (dtype, min-max,
z-score and histogram-equalisation scaling of a batch, NaN-masked).
"""

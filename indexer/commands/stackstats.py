"""``photoqa stack-stats FILE``: per-pixel statistics over an array stack, no database.

Mean, variance (Welford/Chan over batches, :mod:`indexer.stacks.pixelstats`), minimum,
maximum and, for integer stacks, a per-pixel histogram of counts; hot and dead sites
(:mod:`indexer.stacks.sites`). Written as one ``.npz`` (keys of
:meth:`PixelStats.as_arrays`, per stack prefixed ``<key>/`` for ``.npz`` members).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.atomicfile import replace_with
from indexer.decode import arrays
from indexer.pipeline.stackrun import stack_pixelstats
from indexer.stacks import pixelstats, sites


@dataclass
class StackStats:
    path: str
    key: str
    shape: tuple
    dtype: str
    stats: pixelstats.PixelStats
    sites: list
    seconds: float

    def as_dict(self, *, pixels: bool = True) -> dict:
        out = {"path": self.path, "key": self.key, "shape": list(self.shape), "dtype": self.dtype,
               "frames": self.stats.frames, "seconds": round(self.seconds, 3),
               "frames_per_second": round(self.stats.frames / self.seconds, 1) if self.seconds else None,
               "sites": [{"channel": s.channel, "x": s.x, "y": s.y, "kind": s.kind, "mean": s.mean,
                          "centre": s.centre} for s in self.sites]}
        if pixels:
            out.update(mean=self.stats.mean.tolist(), variance=self.stats.variance().tolist(),
                       min=self.stats.minimum.tolist(), max=self.stats.maximum.tolist())
        return out


def stack_stats(path: Path) -> list[StackStats]:
    """Per-pixel statistics of every stack in ``path`` (DecodeError for other files)."""
    out = []
    for stack in arrays.open_stacks(path):
        started = time.perf_counter()
        stats = stack_pixelstats(stack)
        found = sites.classify(stats.mean, stats.variance())
        out.append(StackStats(str(path), stack.key, stack.raw_shape, str(stack.dtype), stats, found,
                              time.perf_counter() - started))
    return out


def write_npz(results: list[StackStats], out: Path) -> None:
    """All results in one ``.npz`` (atomically); keys prefixed ``<key>/`` when a member has one."""
    content = {}
    for r in results:
        prefix = f"{r.key}/" if r.key else ""
        for name, value in r.stats.as_arrays().items():
            content[prefix + name] = value
        content[prefix + "sites"] = np.array([(s.channel, s.y, s.x, 1 if s.kind == "hot" else -1)
                                              for s in r.sites], dtype=np.int64).reshape(-1, 4)
    replace_with(out, lambda fh: np.savez(fh, **content))


def render_text(results: list[StackStats], max_side: int = 16) -> str:
    """Per-pixel mean and standard deviation grids (small frames), then the sites."""
    lines = []
    for r in results:
        name = f"{r.path}#{r.key}" if r.key else r.path
        rate = f"{r.stats.frames / r.seconds:,.0f} frames/s" if r.seconds else ""
        lines.append(f"{name}: {r.shape} {r.dtype}, {r.stats.frames} frames ({rate})")
        c, h, w = r.stats.mean.shape
        if max(h, w) <= max_side:
            for label, grid in (("mean", r.stats.mean), ("std", np.sqrt(r.stats.variance()))):
                for ch in range(c):
                    lines.append(f"  {label}" + (f" (channel {ch})" if c > 1 else "") + ":")
                    lines.extend("    " + " ".join(f"{v:9.3f}" for v in row) for row in grid[ch])
        else:
            lines.append(f"  mean of pixel means {r.stats.mean.mean():.4g}, "
                         f"median pixel std {np.nanmedian(np.sqrt(r.stats.variance())):.4g}")
        lines.append(f"  {len(r.sites)} hot/dead sites" + (":" if r.sites else ""))
        lines.extend(f"    {s.kind:4} x={s.x} y={s.y}" + (f" channel {s.channel}" if c > 1 else "")
                     + f" mean {s.mean:.4g} (median site {s.centre:.4g})" for s in r.sites)
    return "\n".join(lines)

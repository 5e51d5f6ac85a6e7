"""Synthetic camera frames with planted defects, for tests, the demo and the benchmark.

A :class:`SyntheticCamera` is an RGGB Bayer sensor (16-bit, black 1024, white 65535) with
known hot, dead and stuck sites. :func:`render_cfa` turns a scene (an sRGB photo, e.g. a
Kodak image, or a generated texture) into one raw frame: random crop and flip, sRGB ->
linear, random exposure, RGGB mosaic with channel sensitivities, shot noise (Gaussian
approximation of Poisson, ~3 DN per electron) plus read noise, then the defects:

- hot:   + a fixed offset (dark-current hot pixel), 10-50% of the range;
- dead:  x a gain of 0-0.1 (a nearly blind photosite);
- stuck: one constant raw value (20-80% of the range), whatever the light.

The scene is magnified 2x onto the sensor (real optics do not resolve detail at the
photosite pitch; a Kodak photo sampled 1:1 by a Bayer mosaic would alias). A 1% flare floor keeps scenes off pure black, as real lenses do; a dead site in a truly
black area cannot be told from its neighbours by any method.
:func:`develop` makes the camera-JPEG version (bilinear demosaic, sRGB, 8-bit). The file
helpers write 16-bit PNG/TIFF (Pillow mode "I;16") and JPEG q95 with EXIF Make/Model.
Pure numpy except :func:`load_scenes` and the writers.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy import ndimage

RGGB = np.array([[0, 1], [3, 2]], dtype=np.int8)
SENSITIVITY = np.array([0.55, 1.0, 0.7, 1.0])  # R, G, B, G2 relative response
MAKE, MODEL = "Photoqa", "Synthetic S1"


@dataclass(frozen=True)
class SyntheticCamera:
    """Sensor geometry, levels and the planted truth; coordinates are (y, x) int arrays (K, 2)."""

    height: int
    width: int
    hot: np.ndarray
    dead: np.ndarray
    stuck: np.ndarray
    hot_offset: np.ndarray  # (K_hot,) DN added
    dead_gain: np.ndarray  # (K_dead,)
    stuck_value: np.ndarray  # (K_stuck,) raw DN
    black: int = 1024
    white: int = 65535
    read_noise: float = 6.0  # DN
    dn_per_electron: float = 3.0
    pattern: np.ndarray = field(default_factory=lambda: RGGB.copy())
    make: str = MAKE
    model: str = MODEL

    def truth(self, kinds=("hot", "dead", "stuck")) -> set[tuple[int, int, str]]:
        """Planted sites as {(x, y, kind)}."""
        return {(int(x), int(y), k) for k in kinds for y, x in getattr(self, k)}


def _spaced_sites(rng, height, width, count, taken, spacing=6, border=4) -> np.ndarray:
    """``count`` random sites at least ``spacing`` px from each other and the border."""
    sites = []
    while len(sites) < count:
        y = int(rng.integers(border, height - border))
        x = int(rng.integers(border, width - border))
        if not taken[max(0, y - spacing) : y + spacing + 1, max(0, x - spacing) : x + spacing + 1].any():
            taken[y, x] = True
            sites.append((y, x))
    return np.array(sites, dtype=np.int64).reshape(-1, 2)


def make_camera(height: int = 384, width: int = 512, *, hot: int = 24, dead: int = 12,
                stuck: int = 12, seed: int = 0) -> SyntheticCamera:
    """A camera with the given numbers of planted defects (0, 0, 0 for a clean camera)."""
    if height % 2 or width % 2:
        raise ValueError("sensor sides must be even (whole Bayer periods)")
    rng = np.random.default_rng(seed)
    taken = np.zeros((height, width), bool)
    sites = [_spaced_sites(rng, height, width, n, taken) for n in (hot, dead, stuck)]
    span = 65535 - 1024
    return SyntheticCamera(
        height, width, *sites,
        hot_offset=rng.uniform(0.10, 0.50, hot) * span,
        dead_gain=rng.uniform(0.0, 0.1, dead),
        stuck_value=np.round(1024 + rng.uniform(0.2, 0.8, stuck) * span))


# (y, x) under R (even, even), G (even, odd) and B (odd, odd) of RGGB, far from each other
STUCK_RGB = np.array([[40, 60], [70, 101], [91, 131]])


def stuck_camera(height: int = 112, width: int = 160, *, value: float = 18000.0, seed: int = 9) -> SyntheticCamera:
    """A camera with one stuck site under each colour (:data:`STUCK_RGB`, at ``value`` of
    the raw range) besides 12 hot and 6 dead sites kept more than 6 px away from them (a
    demosaiced blob must not touch another defect's): the planted camera of the stuck
    diagnosis on rendered frames (its tests and bench/sensor_stuck_jpeg.py)."""
    base = make_camera(height, width, hot=12, dead=6, stuck=0, seed=seed)
    taken = np.concatenate([base.hot, base.dead])
    keep = [all(max(abs(y - ty), abs(x - tx)) > 6 for ty, tx in STUCK_RGB) for y, x in taken]
    hot, dead = base.hot[keep[: len(base.hot)]], base.dead[keep[len(base.hot):]]
    return replace(base, hot=hot, dead=dead, stuck=STUCK_RGB, stuck_value=np.full(len(STUCK_RGB), value))


def generated_scene(rng: np.random.Generator, height: int = 512, width: int = 768) -> np.ndarray:
    """A textured sRGB scene, float32 (H, W, 3) in [0, 1]: smooth blobs, gratings, edges."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for _ in range(6):
        fy, fx = rng.uniform(0.005, 0.15, 2)
        img += rng.uniform(0, 0.25, 3) * (0.5 + 0.5 * np.sin(fy * yy + fx * xx + rng.uniform(0, 6)))[..., None]
    for _ in range(12):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        img[y0 : y0 + rng.integers(20, 200), x0 : x0 + rng.integers(20, 200)] += rng.uniform(-0.3, 0.3, 3)
    noise = ndimage.gaussian_filter(rng.normal(0, 0.15, (height, width)), 1.5)
    img += noise[..., None].astype(np.float32)
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo)


def load_scenes(photos_dir: str | Path | None = None, *, count: int = 24, seed: int = 0) -> list[np.ndarray]:
    """sRGB scenes, float32 (H, W, 3) in [0, 1], landscape: the Kodak PNGs in ``photos_dir``
    (``kodim*.png``) when present, else ``count`` generated textures."""
    paths = sorted(Path(photos_dir).glob("kodim*.png"))[:count] if photos_dir else []
    if not paths:
        rng = np.random.default_rng(seed)
        return [generated_scene(rng) for _ in range(count)]
    from PIL import Image

    scenes = []
    for path in paths:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        scenes.append(arr if arr.shape[1] >= arr.shape[0] else arr.transpose(1, 0, 2))
    return scenes


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0, 1)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _crop(scene: np.ndarray, height: int, width: int, rng, magnification: float) -> np.ndarray:
    """A random (height, width) view of the scene as the lens projects it: magnified
    (the sensor oversamples the photo's detail), then random flips."""
    sh, sw = scene.shape[:2]
    zoom = max(magnification, (height + 1) / sh, (width + 1) / sw)
    ch, cw = int(np.ceil(height / zoom)) + 2, int(np.ceil(width / zoom)) + 2
    y0, x0 = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    crop = ndimage.zoom(scene[y0 : y0 + ch, x0 : x0 + cw], (zoom, zoom, 1), order=1)
    crop = crop[:height, :width]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1]
    return crop


def render_cfa(camera: SyntheticCamera, scene: np.ndarray, rng: np.random.Generator, *,
               defects: bool = True, stars: tuple[tuple[int, int, float], ...] = (),
               magnification: float = 2.0) -> np.ndarray:
    """One raw frame, uint16 (H, W) RGGB, black ``camera.black``, clipped at ``camera.white``.

    magnification: scene pixels per sensor pixel (default 2): a real lens and AA filter
    do not resolve detail at the photosite pitch; a photo sampled 1:1 would alias.
    stars: (y, x, peak DN) point sources blurred over a few sites (sigma 0.7 px).
    """
    h, w = camera.height, camera.width
    lin = _srgb_to_linear(_crop(scene, h, w, rng, magnification))
    span = camera.white - camera.black
    expo = rng.uniform(0.5, 0.85) * span
    colour = camera.pattern[np.arange(h)[:, None] % 2, np.arange(w)[None, :] % 2]
    channel = np.array([0, 1, 2, 1])[colour]  # RGB index of each site
    plane = np.take_along_axis(lin, channel[..., None], axis=2)[..., 0]
    signal = (0.01 + 0.99 * plane) * SENSITIVITY[colour] * expo
    if stars:
        spot = np.zeros((h, w))
        for y, x, peak in stars:
            spot[y, x] = peak
        signal = signal + ndimage.gaussian_filter(spot, 0.7) / (1 / (2 * np.pi * 0.49))
    std = np.sqrt(camera.read_noise ** 2 + camera.dn_per_electron * np.maximum(signal, 0))
    raw = signal + rng.normal(0, 1, (h, w)) * std
    if defects:
        raw = _plant(camera, raw)
    raw = np.clip(np.round(raw + camera.black), 0, camera.white)
    if defects and len(camera.stuck):
        raw[camera.stuck[:, 0], camera.stuck[:, 1]] = camera.stuck_value
    return raw.astype(np.uint16)


def _plant(camera: SyntheticCamera, raw: np.ndarray) -> np.ndarray:
    raw = raw.copy()
    if len(camera.hot):
        raw[camera.hot[:, 0], camera.hot[:, 1]] += camera.hot_offset
    if len(camera.dead):
        raw[camera.dead[:, 0], camera.dead[:, 1]] *= camera.dead_gain
    return raw


def camera_frames(camera: SyntheticCamera, scenes: list[np.ndarray], count: int, *,
                  seed: int = 1, defects: bool = True) -> Iterator[np.ndarray]:
    """``count`` raw frames, cycling through the scenes with random crops and exposures."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield render_cfa(camera, scenes[i % len(scenes)], rng, defects=defects)


def develop(cfa: np.ndarray, camera: SyntheticCamera) -> np.ndarray:
    """Camera-JPEG-like development: bilinear demosaic, white balance, sRGB, uint8 (H, W, 3)."""
    h, w = cfa.shape
    lin = (cfa.astype(np.float32) - camera.black) / (camera.white - camera.black)
    colour = camera.pattern[np.arange(h)[:, None] % 2, np.arange(w)[None, :] % 2]
    k_rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
    k_g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
    out = np.empty((h, w, 3), np.float32)
    for rgb, colours, kernel in ((0, (0,), k_rb), (1, (1, 3), k_g), (2, (2,), k_rb)):
        mask = np.isin(colour, colours)
        out[..., rgb] = ndimage.convolve(np.where(mask, lin, 0), kernel, mode="mirror")
        out[..., rgb] /= SENSITIVITY[colours[0]] * 0.85
    return np.round(_linear_to_srgb(out) * 255).astype(np.uint8)


def _exif(make: str, model: str, captured=None):
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    if captured is not None:
        exif.get_ifd(0x8769)[0x9003] = captured.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    return exif


def write_frame(path: str | Path, array: np.ndarray, *, make: str = MAKE, model: str = MODEL,
                quality: int = 95, captured=None) -> Path:
    """Write a frame with EXIF Make/Model (and DateTimeOriginal when ``captured``, a
    datetime, is given): (H, W) uint16 -> 16-bit grey PNG/TIFF ("I;16"); (H, W, 3) uint8
    -> PNG/TIFF/JPEG (JPEG at ``quality``, default 95)."""
    from PIL import Image

    path = Path(path)
    if array.dtype == np.uint16 and array.ndim == 2:
        image = Image.fromarray(array)  # Pillow maps 2-D uint16 to mode "I;16"
    elif array.dtype == np.uint8:
        image = Image.fromarray(array)
    else:
        raise ValueError(f"cannot write {array.shape} {array.dtype}")
    options = {"exif": _exif(make, model, captured)}
    if path.suffix.lower() in (".jpg", ".jpeg"):
        if array.dtype != np.uint8:
            raise ValueError("JPEG needs uint8 data")
        options.update(quality=quality)
    image.save(path, **options)
    return path

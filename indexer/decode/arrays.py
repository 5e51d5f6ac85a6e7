"""Array stacks as image sources: ``.npy`` files and the arrays inside ``.npz`` files.

A 2-D array (H, W) is one frame; (N, H, W) is N grey frames; (N, C, H, W) is N frames of
C channels (channels first, the PyTorch layout). Frames are never loaded whole:

* ``.npy``: ``np.load(mmap_mode="r")``, a read-only memory map (pages come and go);
* ``.npz`` members stored without compression (``np.savez``): memory-mapped at the
  member's offset inside the zip (``np.load`` itself ignores ``mmap_mode`` for ``.npz``);
* compressed members (``np.savez_compressed``): read sequentially in chunks from the zip
  stream (random access re-reads from the start: fine for batches in order, slow for
  scattered single frames).

A stack is addressed by ``(path, key)``: ``key`` is ``""`` for a ``.npy`` file and the
member name without ``.npy`` for ``.npz``. How its frames appear as rows: see
:func:`frame_path`.
"""
from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.decode.sniff import ARRAY_EXTENSIONS, is_array_file  # noqa: F401 - NumPy-free home, re-exported
from indexer.errors import DecodeError

NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def sniff_array(head: bytes, suffix: str = "") -> str | None:
    """``"npy"`` or ``"npz"`` from a file's first 32 bytes (and name), else None."""
    if head.startswith(NPY_MAGIC):
        return "npy"
    # a zip whose first member is an .npy (np.savez writes members in argument order)
    if head.startswith(_ZIP_MAGIC) and (suffix.lower() == ".npz" or b".npy" in head[30:]):
        return "npz"
    return None


def frame_path(path: str, key: str, frame: int) -> str:
    """The ``images.path`` of one frame: ``/data/stack.npy#12`` for frame 12 of a ``.npy``,
    ``/data/set.npz#train_x:12`` for frame 12 of member ``train_x`` of a ``.npz``."""
    return f"{path}#{key}:{frame}" if key else f"{path}#{frame}"


def stack_of(path: str) -> str | None:
    """The stack file a frame's ``images.path`` points into (:func:`frame_path`), or None
    for the path of a file of its own."""
    container, sep, frame = path.rpartition("#")
    if not sep or not is_array_file(container) or not frame.rpartition(":")[2].isdigit():
        return None
    return container


@dataclass(frozen=True)
class StackShape:
    """Frames of a stack: ``frames`` N, ``channels`` C, ``height`` H, ``width`` W."""

    frames: int
    channels: int
    height: int
    width: int


def stack_shape(shape: tuple[int, ...]) -> StackShape:
    """(H, W) -> 1 frame; (N, H, W) -> N grey frames; (N, C, H, W) -> N frames of C
    channels. Raises DecodeError for other ranks or empty frames."""
    if len(shape) == 2:
        n, c, (h, w) = 1, 1, shape
    elif len(shape) == 3:
        n, c, h, w = shape[0], 1, shape[1], shape[2]
    elif len(shape) == 4:
        n, c, h, w = shape
    else:
        raise DecodeError("unsupported", f"array of shape {shape}: expected (H, W), (N, H, W) or (N, C, H, W)")
    if min(h, w, c) < 1:
        raise DecodeError("unsupported", f"array of shape {shape} has empty frames")
    return StackShape(int(n), int(c), int(h), int(w))


class ArrayStack:
    """One array of frames, read in batches; ``frames(start, stop)`` returns a
    (n, C, H, W) array in the file's dtype (a view of the memory map when possible)."""

    def __init__(self, path: str, key: str, dtype: np.dtype, shape: tuple[int, ...], *,
                 mapped: np.ndarray | None = None, member: str | None = None,
                 data_offset: int = 0, fortran: bool = False):
        self.path, self.key, self.dtype = path, key, np.dtype(dtype)
        self.raw_shape = tuple(int(s) for s in shape)
        self.shape = stack_shape(self.raw_shape)
        self._mapped, self._member, self._data_offset, self._fortran = mapped, member, data_offset, fortran
        if mapped is None and fortran:
            raise DecodeError("unsupported", f"{path}#{key}: compressed Fortran-ordered arrays are not supported")

    @property
    def frame_bytes(self) -> int:
        s = self.shape
        return s.channels * s.height * s.width * self.dtype.itemsize

    def _as_nchw(self, a: np.ndarray) -> np.ndarray:
        s = self.shape
        return a.reshape(a.shape[0] if a.ndim > 2 else 1, s.channels, s.height, s.width)

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start..stop-1`` as (n, C, H, W)."""
        stop = min(stop, self.shape.frames)
        if self._mapped is not None:
            view = self._mapped if self._mapped.ndim == 2 else self._mapped[start:stop]
            return self._as_nchw(np.asarray(view))
        return self._read_stream(start, stop)

    def _read_stream(self, start: int, stop: int) -> np.ndarray:
        with zipfile.ZipFile(self.path) as zf, zf.open(self._member) as fh:
            fh.seek(self._data_offset + start * self.frame_bytes)  # a zip stream seeks by reading
            data = fh.read((stop - start) * self.frame_bytes)
        a = np.frombuffer(data, dtype=self.dtype)
        s = self.shape
        return a.reshape(stop - start, s.channels, s.height, s.width)

    def batches(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first frame index, (n, C, H, W) frames) for consecutive batches of ``size``."""
        if self._mapped is None:
            yield from self._stream_batches(size)
            return
        for start in range(0, self.shape.frames, size):
            yield start, self.frames(start, start + size)

    def _stream_batches(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        s = self.shape
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(self._member) as fh:
                fh.seek(self._data_offset)
                for start in range(0, s.frames, size):
                    n = min(size, s.frames - start)
                    data = fh.read(n * self.frame_bytes)
                    if len(data) != n * self.frame_bytes:
                        raise DecodeError("truncated", f"{self.path}#{self.key}: member ends early")
                    yield start, np.frombuffer(data, dtype=self.dtype).reshape(n, s.channels, s.height, s.width)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # CRC, inflate, a short file
            raise DecodeError("corrupt", f"{self.path}#{self.key}: {exc}") from exc


def _check_dtype(path: str, dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DecodeError("unsupported", f"{path}: arrays of dtype {dtype} are not images")


def open_stacks(path: str | Path) -> list[ArrayStack]:
    """The image arrays of a ``.npy`` or ``.npz`` file (never their data). Raises
    DecodeError ``unsupported``/``corrupt``/``unreadable`` with a one-line reason."""
    path = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError as exc:
        raise DecodeError("unreadable", str(exc)) from exc
    kind = sniff_array(head, Path(path).suffix)
    if kind == "npy":
        return [_open_npy(path)]
    if kind == "npz":
        return _open_npz(path)
    raise DecodeError("unsupported", f"{path}: not a .npy or .npz array file")


def _open_npy(path: str) -> ArrayStack:
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DecodeError("corrupt", f"{path}: {exc}") from exc
    _check_dtype(path, mapped.dtype)
    return ArrayStack(path, "", mapped.dtype, mapped.shape, mapped=mapped)


def _open_npz(path: str) -> list[ArrayStack]:
    out = []
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                out.append(_npz_member(path, zf, info))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DecodeError("corrupt", f"{path}: {exc}") from exc
    if not out:
        raise DecodeError("unsupported", f"{path}: no arrays in the .npz")
    return out


def _npz_member(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> ArrayStack:
    key = info.filename[:-4]
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(fh)
        header_len = fh.tell()
    _check_dtype(f"{path}#{key}", dtype)
    if info.compress_type != zipfile.ZIP_STORED:
        return ArrayStack(path, key, dtype, shape, member=info.filename, data_offset=header_len, fortran=fortran)
    # stored member: its bytes lie in the file after the local header (30 bytes + name + extra)
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
    name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
    offset = info.header_offset + 30 + name_len + extra_len + header_len
    count = int(np.prod(shape))
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,)) if count else np.zeros(0, dtype)
    mapped = mapped.reshape(shape, order="F" if fortran else "C")
    return ArrayStack(path, key, dtype, shape, mapped=mapped)

"""Tell an image's format from its first bytes, not its name.

Returns a short kind (``jpeg``, ``png``, ``gif``, ``bmp``, ``webp``, ``tiff``, ``heif``,
``raw``) or ``None``. TIFF-based RAW files (CR2, NEF, ARW, DNG, PEF...) start like any
TIFF; :func:`tiff_is_raw` looks further (the CR2 marker, a DNGVersion tag) and the
extension breaks the tie only between TIFF-like kinds.
"""
from __future__ import annotations

import struct
from pathlib import Path

# Array stacks are told by name (the walk's cheap test); here, without NumPy, so that
# `photoqa index` can tell a one-image run before importing it (pipeline.pools.prestart)
ARRAY_EXTENSIONS = frozenset({".npy", ".npz"})


def is_array_file(path: str | Path) -> bool:
    """Whether ``path`` is an array stack (.npy, .npz) by its name."""
    return Path(path).suffix.lower() in ARRAY_EXTENSIONS


RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .bay .cap .cr2 .cr3 .crw .dcr .dcs .dng .drf .eip .erf .fff .gpr .iiq "
    ".k25 .kdc .mdc .mef .mos .mrw .nef .nrw .orf .pef .ptx .pxn .qtk .r3d .raf .raw .rw2 "
    ".rwl .rwz .sr2 .srf .srw .x3f".split()
)
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .gif .bmp .dib .tif .tiff .webp .heic .heif .hif .avif".split()
)
# Sidecars beside a photo: camera previews next to a RAW (.thm), XMP metadata (.xmp),
# Apple edit lists (.aae). Metadata, not photos of their own; they travel with their
# photo when `photoqa dupes --apply` moves it (indexer.fileops.sidecars).
SIDECAR_EXTENSIONS = frozenset({".thm", ".xmp", ".aae"})

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif"}
_RAW_MAGIC = (
    (0, b"II\x1a\x00\x00\x00HEAPCCDR"),  # Canon CRW
    (0, b"FUJIFILMCCD-RAW"),
    (0, b"IIRO"), (0, b"IIRS"), (0, b"MMOR"),  # Olympus ORF
    (0, b"IIU\x00"),  # Panasonic RW2
    (0, b"\x00MRM"),  # Minolta MRW
    (0, b"FOVb"),  # Sigma X3F
    (0, b"qktk"), (0, b"qktn"),  # Apple QuickTake
)


def sniff(head: bytes) -> str | None:
    """Kind of image from the first 32 bytes of a file, or None if unrecognised."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if any(head[off:off + len(m)] == m for off, m in _RAW_MAGIC):
        return "raw"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"crx ":
            return "raw"  # Canon CR3 is an ISO media file too
        if brand in _HEIF_BRANDS:
            return "heif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def is_raw(data: bytes, suffix: str) -> bool:
    """Whether a file (its bytes and its name's suffix) goes to the RAW decoder: a RAW
    signature, a TIFF that is a camera RAW (:func:`tiff_is_raw`), or no signature we know
    with a RAW file name (formats whose header has no fixed magic, e.g. Kodak KDC)."""
    kind = sniff(data[:32])
    return kind == "raw" or (kind == "tiff" and tiff_is_raw(data, suffix)) or (
        kind is None and suffix.lower() in RAW_EXTENSIONS)


def tiff_is_raw(data: bytes, suffix: str) -> bool:
    """Whether a TIFF-structured file is a camera RAW (CR2 marker, DNGVersion, RAW name)."""
    if data[8:10] == b"CR":
        return True
    if suffix.lower() in RAW_EXTENSIONS:
        return True
    return _ifd0_has_tag(data, 0xC612)  # DNGVersion


def tiff_looks_like_camera_raw(data: bytes) -> bool:
    """Whether a TIFF-structured file carries a camera RAW's markers (the CR2 marker,
    DNGVersion, SubIFDs, a camera Make). When LibRaw cannot decode such a file, its first
    IFD is a thumbnail (a 256 px NEF/DNG preview, a 1x1 IIQ placeholder), not the photo."""
    return data[8:10] == b"CR" or any(_ifd0_has_tag(data, t) for t in (0xC612, 0x014A, 0x010F))


def _ifd0_has_tag(data: bytes, tag: int) -> bool:
    endian = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(endian + "I", data, 4)
        (count,) = struct.unpack_from(endian + "H", data, offset)
        for i in range(min(count, 512)):
            (entry_tag,) = struct.unpack_from(endian + "H", data, offset + 2 + 12 * i)
            if entry_tag == tag:
                return True
    except struct.error:
        return False
    return False


def is_candidate(path: Path, head: bytes) -> bool:
    """Whether a walked file should be indexed: an image by content or by name."""
    suffix = path.suffix.lower()
    if suffix in SIDECAR_EXTENSIONS:
        return False
    return sniff(head) is not None or suffix in RAW_EXTENSIONS or suffix in IMAGE_EXTENSIONS


_JPEG_METADATA = set(range(0xE0, 0xF0)) | {0xFE}  # APP0-APP15 (EXIF, XMP, ICC...) and COM


def jpeg_payload_digest(data: bytes) -> str | None:
    """SHA-256 of a JPEG's coded image (tables, frame header, scans), metadata left out.

    Two JPEGs with equal payloads decode to the same pixels whatever their EXIF, XMP,
    comments or trailing bytes, so a rewritten-metadata copy is proven ``same_pixels``
    without decoding. (ISO/IEC 10918-1 B.1: markers 0xFFxx, segments with a 2-byte
    length; the entropy-coded data runs from SOS to EOI.) None when not a parseable JPEG.
    """
    import hashlib

    if not data.startswith(b"\xff\xd8"):
        return None
    digest, pos = hashlib.sha256(), 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:  # SOS: header, then entropy-coded data up to the last EOI
            end = data.rfind(b"\xff\xd9")
            if end < pos:
                return None
            digest.update(data[pos:end + 2])
            return digest.hexdigest()
        if marker not in _JPEG_METADATA:
            digest.update(data[pos:pos + 2 + length])
        pos += 2 + length
    return None

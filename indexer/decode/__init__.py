"""The decode boundary: a file's bytes in, pixels and metadata out.

The only package that calls image libraries' file readers (Pillow, pillow-heif, rawpy,
exifread). ``image`` decodes any supported file; ``raw`` is the rawpy path; ``sniff``
tells formats by content; ``exif`` reads capture metadata and camera identity; ``tiff16``
writes 16-bit TIFFs. Everything else in photoqa receives arrays and dataclasses.
"""
import importlib

# Loaded on first use (PEP 562): ``image`` pulls in NumPy, Pillow and the RAW path, which
# reading settings (indexer.config imports the size limits from ``limits``) must not pay.
__all__ = ["HEIF_AVAILABLE", "MAX_PIXELS", "RAW_PREVIEW_MIN", "WORK_SIZE", "DecodeError", "Decoded", "FullImage", "SensorData", "bit_depth", "decode_bytes",
           "decode_file", "draft_request", "exif_of", "load_full", "load_grey", "load_pixels", "open_pillow",
           "array_pixel_digest", "payload_digest", "pixel_digest", "read_bytes", "sensor_frame", "sidecar_meta"]


def __getattr__(name: str):
    if name == "DecodeError":
        from indexer.errors import DecodeError

        return DecodeError
    if name in __all__:
        return getattr(importlib.import_module(f"{__name__}.image"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None

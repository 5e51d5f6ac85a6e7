"""The decode boundary: a file's bytes in, pixels and metadata out.

The only package that calls image libraries' file readers (Pillow, pillow-heif, rawpy,
exifread). ``image`` decodes any supported file; ``raw`` is the rawpy path; ``sniff``
tells formats by content; ``exif`` reads capture metadata and camera identity; ``tiff16``
writes 16-bit TIFFs. Everything else in photoqa receives arrays and dataclasses.
"""
from indexer.decode.image import (HEIF_AVAILABLE, MAX_PIXELS, RAW_PREVIEW_MIN, WORK_SIZE, Decoded, FullImage, SensorData, bit_depth, decode_bytes,
                                  decode_file, draft_request, exif_of, load_full, load_pixels, open_pillow,
                                  payload_digest, pixel_digest, read_bytes, sensor_frame,
                                  sidecar_meta)
from indexer.errors import DecodeError

__all__ = ["HEIF_AVAILABLE", "MAX_PIXELS", "RAW_PREVIEW_MIN", "WORK_SIZE", "DecodeError", "Decoded", "FullImage", "SensorData", "bit_depth", "decode_bytes",
           "decode_file", "draft_request", "exif_of", "load_full", "load_pixels", "open_pillow",
           "payload_digest", "pixel_digest", "read_bytes", "sensor_frame", "sidecar_meta"]

"""Pure per-image and per-pair measurement: arrays in, numbers and dataclasses out.

``features`` (one image's hashes, histograms, exposure, sharpness, thumbnail), ``hashes``
(pHash/dHash of the 8 orientations and of centre crops), ``orient`` (the D4 group of
rotations and flips), ``align`` (sub-pixel phase correlation of two thumbnails) and
``linear`` (sRGB/BT.709 transfer functions). Shared by matching, exposure and sensor
work; imports nothing from photoqa but itself.
"""

"""Synthetic images with planted answers: ``scenes`` (textured scenes and their copies, for
the demo and tests) and ``camera`` (frames of a camera with planted hot, stuck and dead
photosites)."""

"""photoqa's image side: decoding, pure measurements, matching, sensor statistics.

Only :mod:`indexer.decode` touches image libraries' file readers; everything else
works on arrays and returns dataclasses. SQL lives in :mod:`db`.
"""

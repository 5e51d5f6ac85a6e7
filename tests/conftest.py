"""Shared fixtures: where the public test data lives, and tiny generated images."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout (or ``$PHOTOQA_SHARED_DATA``), if present."""
    env = os.environ.get("PHOTOQA_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set PHOTOQA_SHARED_DATA to point at it)")
    return path

"""Shared fixtures: where the public test data lives, and tiny generated images."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests check algebra, not speed: on a loaded 2-core machine (CI, parallel
# benchmarks) drawing 1024-element lists can exceed Hypothesis's time budgets.
settings.register_profile("photoqa", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("photoqa")

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


@pytest.fixture(scope="module")
def learn_from_rendered_frames(tmp_path_factory):
    """Sensor statistics from PNG/JPEG frames, every one (the default learns from a sample
    of large frames; the small test frames are all learnt either way).

    Module-scoped so that module-scoped fixtures which index frames see it: a module uses
    it from an autouse module-scoped fixture of its own.
    """
    config = tmp_path_factory.mktemp("config") / "rendered.toml"
    config.write_text("[sensor]\nrendered_frames = true\nlearn_every_frame = true\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHOTOQA_CONFIG", str(config))
        yield config

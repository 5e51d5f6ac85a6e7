"""``photoqa hotpixels``: per-sensor defect reports, ``.badpixels`` export, defect maps."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from db import sensors as dbsensors
from indexer.config import SensorSettings
from indexer.sensor import budget
from indexer.sensor import Defect, dcraw_badpixels, defect_map, export_badpixels, rawtherapee_filename
from indexer.sensor.dating import Onset, onset
from indexer.sensor.export import write_text
from indexer.commands.output import camera_name
from indexer.pipeline.sensorspool import waiting_frames
from indexer.pipeline.sensorstore import FolderStore, open_store
from indexer.session import Session


@dataclass
class SensorReport:
    id: int
    make: str
    model: str
    serial: str
    width: int
    height: int
    kind: str
    pattern: str | None
    frames: int
    required: int
    defects: list[Defect] = field(default_factory=list)
    error: str = ""  # the statistics file is missing or unreadable
    updated_at: datetime | None = None  # when its statistics last took new frames
    learning: str = ""  # 'every frame', 'mapping' or 'sample' (indexer.sensor.budget; '' for stacks)
    stable_since: int = 0  # its frame count when its defect list last changed
    stable_since_at: datetime | None = None
    # per defect (x, y) with a first date: how precise it is (indexer.sensor.dating)
    onsets: dict[tuple[int, int], Onset] = field(default_factory=dict)
    # frames learnt but not counted yet: a young body's, kept in the spool until it has
    # ``required`` (pipeline.sensorspool.waiting_frames)
    waiting: int = 0

    def first_seen_text(self, d: Defect) -> str:
        """'2026-03-01T08:40:00', or with skipped frames before it the bracket
        'after 2026-03-01T08:37:00, by 2026-03-01T08:40:00'."""
        o = self.onsets.get((d.x, d.y))
        if o is None or o.exact:
            return seen(d.first_seen) or ""
        return f"after {seen(o.first_seen_after)}, by {seen(d.first_seen)}" if o.first_seen_after \
            else f"by {seen(d.first_seen)}"

    def export_defects(self) -> list[Defect]:
        """The defects with ``first_seen`` moved to the earliest frame that may carry each
        (its onset bracket's start): what a ``.badpixels`` third column should say."""
        return [replace(d, first_seen=self.onsets[(d.x, d.y)].onset_from) if (d.x, d.y) in self.onsets else d
                for d in self.defects]

    @property
    def learning_text(self) -> str:
        """e.g. 'sample; stable since frame 96 (2026-12-07 11:40)'; the mode alone while
        the body has fewer than ``required`` frames (no map yet to be stable)."""
        if not self.learning:
            return ""
        if self.frames < self.required:
            return self.learning
        when = f" ({self.stable_since_at:%Y-%m-%d %H:%M})" if self.stable_since_at else ""
        return f"{self.learning}; stable since frame {self.stable_since}{when}"

    @property
    def status(self) -> str:
        if self.error:
            return f"statistics file unusable: {self.error}"
        if self.frames < self.required:
            if self.waiting:
                return (f"not enough frames ({self.frames} of {self.required}; {self.waiting} more waiting, "
                        f"counted once the body has {self.required})")
            return f"not enough frames ({self.frames} of {self.required})"
        return f"{len(self.defects)} defects" if self.defects else "no defects"

    def as_dict(self) -> dict:
        return {"id": self.id, "make": self.make, "model": self.model, "serial": self.serial,
                "width": self.width, "height": self.height, "layout": self.kind,
                "pattern": self.pattern, "frames": self.frames, "waiting": self.waiting, "status": self.status,
                "updated": self.updated_at.isoformat(timespec="seconds") if self.updated_at else None,
                "learning": self.learning or None, "stable_since_frame": self.stable_since,
                "stable_since": self.stable_since_at.isoformat(timespec="seconds") if self.stable_since_at else None,
                "error": self.error or None,
                "defects": [{"x": d.x, "y": d.y, "kind": d.kind, "rate": round(d.rate, 4),
                             "mean_residual": round(d.mean_residual, 2), "frames": d.frames,
                             "first_seen": seen(d.first_seen), "last_seen": seen(d.last_seen),
                             **self._onset_dict(d)}
                            for d in self.defects]}

    def _onset_dict(self, d: Defect) -> dict:
        """first_seen_after: the last learnt frame before first_seen (the defect did not
        stand out in it), None when the date is exact; onset_from: the earliest indexed
        frame that may carry it; skipped_before: frames not learnt in between."""
        o = self.onsets.get((d.x, d.y))
        if o is None:
            return {"first_seen_after": None, "onset_from": seen(d.first_seen), "skipped_before": None}
        return {"first_seen_after": seen(o.first_seen_after), "onset_from": seen(o.onset_from),
                "skipped_before": o.skipped}


def seen(seconds: int | None) -> str | None:
    """A defect date (seconds since 1970, camera clock) as ISO 8601 without a zone."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")


def learning_mode(rows: list[dbsensors.SensorRow], settings: SensorSettings) -> dict[int, str]:
    """Per sensor id, how its body learns now: 'mapping' (the ``learn_megapixels`` share)
    until the body's map is stable, then 'sample' (``indexer.sensor.budget``); 'every
    frame' with ``learn_every_frame``."""
    bodies: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for row in rows:
        if row.kind != "stack":
            bodies.setdefault((row.make, row.model, row.serial), []).append((row.frames, row.stable_since))
    out = {}
    for row in rows:
        if row.kind == "stack":
            continue
        state = budget.settled(bodies[(row.make, row.model, row.serial)])
        mapping = budget.learning_all(state, learn_first=settings.learn_first,
                                      stable_frames=settings.stable_frames, limit=settings.learn_all_limit)
        out[row.id] = "every frame" if settings.learn_every_frame else "mapping" if mapping else "sample"
    return out


def sensor_reports(session: Session, sensor: int | None = None) -> list[SensorReport]:
    """Every sensor (or one) with its defects as last classified."""
    required = session.settings.sensor.min_frames
    store = open_store(session.engine, session.url, session.settings.sensor, writer=False)
    rows = dbsensors.list_sensors(session.engine)
    modes = learning_mode(rows, session.settings.sensor)
    waiting = waiting_frames(session.engine, store.folder if isinstance(store, FolderStore) else None)
    out = []
    for row in rows:
        if sensor is not None and row.id != sensor:
            continue
        # below min_frames a report says "not enough frames" and lists nothing, even if an
        # earlier flush (under a lower min_frames) classified some: no guessing
        defects = [Defect(*fields) for fields in dbsensors.defects_of(session.engine, row.id)
                   ] if row.frames >= required else []
        out.append(SensorReport(row.id, row.make, row.model, row.serial, row.width, row.height,
                                row.kind, row.pattern, row.frames, required, defects,
                                store.problem(row), row.updated_at, modes.get(row.id, ""),
                                row.stable_since, row.stable_since_at, onsets(session, row.id, defects),
                                waiting.get(row.id, 0)))
    return out


def onsets(session: Session, sensor: int, defects: list[Defect]) -> dict[tuple[int, int], Onset]:
    """Per dated defect, how precise its first date is given the frames its body skipped."""
    dated = [d for d in defects if d.first_seen is not None and d.kind != "stuck"]
    if not dated:
        return {}
    learnt, skipped = dbsensors.dated_frames(session.engine, sensor)
    return {(d.x, d.y): onset(d.first_seen, learnt, skipped) for d in dated}


def short_model(make: str, model: str) -> str:
    """Model without a repeated make ('Canon' + 'Canon PowerShot S40' -> 'PowerShot S40'),
    as LibRaw and RawTherapee name cameras."""
    first = make.split()[0].lower() if make.split() else ""
    if first and model.lower().startswith(first):
        return model[len(first):].strip() or model
    return model


def export_all(reports: list[SensorReport], folder: Path) -> list[Path]:
    """Write each sensor's dcraw/LibRaw and RawTherapee files into ``folder``."""
    written = []
    for r in reports:
        if r.frames < r.required:
            continue
        title = camera_name(r.make, r.model, r.serial) + f", {r.width}x{r.height} {r.kind}, {r.frames} frames"
        if r.kind == "cfa":
            written.extend(export_badpixels(r.export_defects(), folder, make=r.make, model=short_model(r.make, r.model),
                                            serial=r.serial or None, title=title))
        else:  # demosaiced geometry: raw developers cannot use it; keep a list in image coordinates
            name = rawtherapee_filename(r.make, short_model(r.make, r.model), r.serial or None)[: -len(".badpixels")]
            written.append(write_text(folder / f"{name} {r.width}x{r.height}.rgb.badpixels",
                                      dcraw_badpixels(r.export_defects(), title=title)))
    return written


def write_maps(reports: list[SensorReport], target: Path) -> list[Path]:
    """Draw each sensor's defects; ``target`` as given for one sensor, ``stem-<id>`` for several."""
    written = []
    for r in reports:
        path = target if len(reports) == 1 else target.with_name(f"{target.stem}-{r.id}{target.suffix or '.png'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(defect_map(r.defects, r.height, r.width)).save(path)
        written.append(path)
    return written

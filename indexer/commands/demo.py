"""``photoqa demo``: a generated sample folder, indexed and reported end to end."""
from __future__ import annotations

from pathlib import Path

import click
from PIL import Image

from indexer.synthetic import scenes as synth

SCENES = 6
CAMERA_FRAMES = 10


def write_sample(folder: Path) -> dict[str, str]:
    """Write the sample photos into ``folder``; returns {file name: what it is}."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}

    def save(img: Image.Image, name: str, what: str, **kw) -> None:
        img.save(folder / name, **kw)
        made[name] = what

    originals = [Image.fromarray(synth.scene(seed)) for seed in range(SCENES)]
    for i, img in enumerate(originals):
        save(img, f"scene{i}.jpg", "original", quality=92)
    a, b, c, d = originals[:4]
    save(a, "scene0_copy.jpg", "exact copy of scene0.jpg", quality=92)
    save(a.resize((320, 240), Image.Resampling.LANCZOS), "scene0_small.jpg", "scene0 resized to 50%", quality=85)
    save(b.rotate(90, expand=True), "scene1_rotated.jpg", "scene1 rotated 90°", quality=90)
    save(b.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "scene1_mirror.png", "scene1 mirrored, as PNG")
    save(c.crop((32, 24, 608, 456)), "scene2_crop.jpg", "scene2 cropped to 90%", quality=90)
    save(Image.fromarray(synth.change_exposure(synth.scene(3), -1.0)), "scene3_dark.jpg",
         "scene3 at -1 EV", quality=92)
    save(d.convert("L"), "scene3_grey.jpg", "scene3 in greyscale", quality=90)
    (folder / "broken.jpg").write_bytes((folder / "scene4.jpg").read_bytes()[:600])
    made["broken.jpg"] = "truncated JPEG (a failure row)"
    made.update(write_camera(folder / "camera"))
    return made


def write_camera(folder: Path, frames: int = CAMERA_FRAMES) -> dict[str, str]:
    """Raw-like 16-bit frames from a synthetic camera with planted hot and dead photosites."""
    from indexer.synthetic import camera as synthetic

    folder.mkdir(parents=True, exist_ok=True)
    camera = synthetic.make_camera(192, 256, hot=6, dead=3, stuck=0, seed=7)
    scenes = synthetic.load_scenes(None, count=4, seed=3)
    made = {}
    for i, cfa in enumerate(synthetic.camera_frames(camera, scenes, frames, seed=5), start=1):
        name = f"frame_{i:02d}.png"
        synthetic.write_frame(folder / name, cfa, make="Photoqa", model="Demo Cam")
        made[f"camera/{name}"] = f"synthetic camera frame (planted: {len(camera.hot)} hot, {len(camera.dead)} dead)"
    return made


def show_dupes(session) -> None:
    from indexer.commands.dupes import dupes_report
    from indexer.commands.output import emit

    for g in dupes_report(session)["groups"]:
        emit(["a", "b", "verdict", "evidence"],
             [(Path(p["a"]).name, Path(p["b"]).name, p["verdict"], p["evidence"]) for p in g["pairs"]],
             "table", title=f"\nduplicate group {g['id']}: keep {Path(g['keeper']).name}")


def show_sensors(session) -> None:
    from indexer.commands.hotpixels import sensor_reports
    from indexer.commands.output import camera_name, emit

    reports = sensor_reports(session)
    emit(["camera", "size", "frames", "status"],
         [(camera_name(r.make, r.model), f"{r.width}x{r.height}", r.frames, r.status) for r in reports],
         "table", title="\nsensors")
    for r in reports:
        if r.defects:
            emit(["x", "y", "kind", "rate"], [(d.x, d.y, d.kind, f"{d.rate:.0%}") for d in r.defects],
                 "table", title=f"defects of {camera_name(r.make, r.model)}")


SETTINGS_FILE = "photoqa-demo.toml"


def write_settings(folder: Path) -> Path:
    """``folder/photoqa-demo.toml``: every setting at its default, except that the demo
    camera's PNG frames feed the sensor statistics. Every key is written, so a
    photoqa.toml already in the folder (or --config) changes nothing of the demo."""
    from indexer.config import Settings, as_dict, to_toml

    tables = as_dict(Settings())
    tables["sensor"]["rendered_frames"] = True
    path = folder / SETTINGS_FILE
    path.write_text(to_toml(tables), encoding="utf-8")
    return path


def run_demo(folder: Path, *, workers: int | None = None) -> None:
    """Write the sample, index it into ``folder/photoqa.db`` with the demo's own settings
    (:func:`write_settings`, whatever photoqa.toml the folder holds) and print what was found."""
    from db.queries import run_sql
    from indexer.commands.index import run_index
    from indexer.commands.output import emit
    from indexer.session import open_session

    made = write_sample(folder)
    settings_file = write_settings(folder)
    click.echo(f"wrote {len(made)} files into {folder}/: 6 scenes, 8 copies of them (exact, resized,\n"
               f"rotated, mirrored, cropped, -1 EV, greyscale), a truncated JPEG, and {CAMERA_FRAMES} frames\n"
               f"of a synthetic camera with 6 hot and 3 dead photosites planted")
    session = open_session(str(folder / "photoqa.db"), str(settings_file))
    summary = run_index(session, [folder], workers=workers)
    click.echo(f"indexed {summary.indexed}, failed {summary.failed} in {summary.seconds:.1f} s")
    cols, rows = run_sql(session.engine, """
        SELECT substr(path, length(:root) + 2) AS file, format, display_width AS w,
               display_height AS h, round(ev, 2) AS ev, round(sharpness, 0) AS sharpness
        FROM images WHERE missing_since IS NULL ORDER BY path""", {"root": str(folder.resolve())})
    emit(cols, rows, "table", title="images")
    cols, rows = run_sql(session.engine, "SELECT path, kind, message FROM failures ORDER BY path")
    emit(cols, rows, "table", title="failures")
    show_dupes(session)
    from indexer.commands.exposure import show_exposure

    show_exposure(session, folder)
    show_sensors(session)
    db = folder / "photoqa.db"
    click.echo(f"\nNext: photoqa --db {db} --config {settings_file} dupes --format json")
    click.echo(f"      photoqa --db {db} --config {settings_file} hotpixels --map {folder / 'defects.png'}")
    click.echo(f"      photoqa --db {db} sql \"SELECT path, ev, sharpness FROM images ORDER BY ev\"")

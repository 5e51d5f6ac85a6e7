"""One renderer for every report: ``--format table|json|csv``.

Tables are drawn with rich on a terminal and as plain aligned text when piped; JSON is
one object; CSV has a header row. Bytes are shown as ``<N bytes>`` (BLOB columns).
"""
from __future__ import annotations

import base64
import csv
import json
import math
import sys
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

FORMATS = ("table", "json", "csv")


class OutputDirError(ValueError):
    """An ``--out`` folder a command must not write into."""


def check_out_dir(out_dir: Path, *, force: bool = False) -> None:
    """The one ``--out`` rule of the commands that write files (``diff``, ``repair``):
    a missing or empty folder is used; a file is refused; a folder holding anything is
    refused unless ``force`` (its files of the same names are then replaced)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputDirError(f"--out {out_dir} is a file, not a folder")
    if not force and out_dir.is_dir() and any(out_dir.iterdir()):
        raise OutputDirError(f"--out {out_dir} is not empty (use --force to write into it anyway)")


def camera_name(make: str | None, model: str | None, serial: str | None = None) -> str:
    """How every report names a camera: the model alone when its first word is a word of
    the make ('Canon' + 'Canon PowerShot G2' -> 'Canon PowerShot G2', 'NIKON CORPORATION'
    + 'NIKON D70' -> 'NIKON D70', 'Eastman Kodak Company' + 'Kodak DC120 ZOOM Digital
    Camera' -> the model), else make and model; then the serial when given."""
    make, model = (make or "").strip(), (model or "").strip()
    words = {w.lower().strip(".,") for w in make.split()}
    first = model.split()[0].lower().strip(".,") if model.split() else ""
    name = model if first and first in words else f"{make} {model}".strip()
    return f"{name} {serial}" if serial else name


BLOB_ENCODINGS = ("size", "hex", "base64")


def encode_blobs(rows: list[tuple], how: str) -> tuple[list[tuple], bool]:
    """(rows with BLOB cells as ``how``: "size" keeps them for :func:`plain` to show as
    ``<N bytes>``, "hex" or "base64" gives their content as text; whether any cell was a BLOB)."""
    found = False

    def cell(v):
        nonlocal found
        if not isinstance(v, (bytes, bytearray, memoryview)):
            return v
        found = True
        data = bytes(v)
        return data if how == "size" else data.hex() if how == "hex" else base64.b64encode(data).decode("ascii")

    return [tuple(cell(v) for v in row) for row in rows], found


def plain(value: Any) -> Any:
    """A JSON/CSV-safe rendering of one cell."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, float) and math.isfinite(value):
        # 6 decimals for ordinary values; 6 significant digits for tiny ones, which
        # decimals would flatten (a 1/16000 s exposure is 6.25e-05, not 6.2e-05 or 0.0)
        return round(value, 6) if value == 0 or abs(value) >= 0.01 else float(f"{value:.6g}")
    return value


def write_json(obj: Any, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    json.dump(obj, out, default=plain, ensure_ascii=False, indent=None)
    out.write("\n")


def write_csv(columns: list[str], rows: list[tuple], out: IO[str] | None = None) -> None:
    writer = csv.writer(out or sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[plain(v) for v in row] for row in rows])


def write_table(columns: list[str], rows: list[tuple], out: IO[str] | None = None,
                title: str | None = None) -> None:
    out = out or sys.stdout
    cells = [["" if v is None else str(plain(v)) for v in row] for row in rows]
    if out.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_lines=False)
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in cells:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    if title:
        out.write(title + "\n")
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")


def emit(columns: list[str], rows: list[tuple], fmt: str, out: IO[str] | None = None,
         title: str | None = None) -> None:
    """Render rows in ``fmt`` (json: a list of objects keyed by column)."""
    if fmt == "json":
        write_json([dict(zip(columns, (plain(v) for v in row))) for row in rows], out)
    elif fmt == "csv":
        write_csv(columns, rows, out)
    else:
        write_table(columns, rows, out, title)

"""Settings: documented defaults, photoqa.toml beside the database, --config wins."""
from __future__ import annotations

import dataclasses
import re

import pytest

from indexer import config
from indexer.session import open_session


def test_defaults():
    s = config.load_settings()
    assert s.index.work_size == 256 and s.index.thumb_size == 128 and s.index.workers == 0
    assert s.database.busy_timeout_ms == 30_000


def test_every_setting_is_documented():
    for section in dataclasses.fields(config.Settings):
        cls = type(getattr(config.Settings(), section.name))
        doc = cls.__doc__ or ""
        for f in dataclasses.fields(cls):
            # "name: what it does" at the start of a line, or "a / name:", "a, name:" for a group
            documented = re.search(rf"^\s*(\w+\s*[/,]\s*)*{f.name}(\s*[/,]\s*\w+)*:", doc, re.M)
            assert documented, f"{cls.__name__}.{f.name} is not documented"


def test_file_beside_database_then_config_wins(tmp_path):
    (tmp_path / "photoqa.toml").write_text("[index]\nwork_size = 300\nthumb_size = 64\n")
    extra = tmp_path / "extra.toml"
    extra.write_text("[index]\nwork_size = 512\n[database]\nbusy_timeout_ms = 5\n")
    beside = config.load_settings(None, tmp_path / "photoqa.db")
    assert (beside.index.work_size, beside.index.thumb_size) == (300, 64)
    both = config.load_settings(extra, tmp_path / "photoqa.db")
    assert (both.index.work_size, both.index.thumb_size, both.database.busy_timeout_ms) == (512, 64, 5)


def test_session_uses_photoqa_toml(tmp_path):
    (tmp_path / "photoqa.toml").write_text("[index]\nmax_pixels = 1000\n")
    session = open_session(str(tmp_path / "photoqa.db"))
    assert session.settings.index.max_pixels == 1000
    session.engine.dispose()


@pytest.mark.parametrize("body,needle", [
    ("[nosuch]\na = 1\n", "unknown section"),
    ("[index]\nwork_sise = 1\n", "work_sise"),
    ("[index]\nwork_size = 'big'\n", "work_size must be int"),
    ("[index]\nwork_size = 2.5\n", "work_size"),
    ("index = 3\n", "must be a table"),
    ("[index\n", ""),
])
def test_bad_files_are_errors(tmp_path, body, needle):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(config.ConfigError) as info:
        config.load_settings(path)
    assert needle in str(info.value)


def test_missing_config_is_an_error_but_missing_beside_db_is_not(tmp_path):
    with pytest.raises(config.ConfigError):
        config.load_settings(tmp_path / "nope.toml")
    assert config.load_settings(None, tmp_path / "photoqa.db") == config.Settings()


def test_integer_valued_float_accepted_and_typed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[index]\nwork_size = 300.0\n")
    s = config.load_settings(path)
    assert s.index.work_size == 300 and isinstance(s.index.work_size, int)


def test_as_dict_lists_every_section():
    d = config.as_dict(config.Settings())
    assert d["index"]["work_size"] == 256 and "database" in d


def test_bool_is_not_a_number(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[index]\nworkers = true\n")
    with pytest.raises(config.ConfigError):
        config.load_settings(path)


def test_config_prints_toml_that_reads_back(tmp_path):
    import json

    from click.testing import CliRunner

    from cli import main
    from indexer.config import as_dict, load_settings

    mine = tmp_path / "mine.toml"
    mine.write_text('[flags]\ndark = 0.5\n[sensor]\nfolder = "a \\\\ \\"b\\""\n')
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "x.db"), "--config", str(mine), "config"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[index]\n") and "dark = 0.5\n" in result.output
    pasted = tmp_path / "photoqa.toml"
    pasted.write_text(result.output)
    assert as_dict(load_settings(pasted)) == as_dict(load_settings(mine))
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "x.db"), "--config", str(mine), "config",
                                       "--format", "json"])
    assert json.loads(result.output)["flags"]["dark"] == 0.5

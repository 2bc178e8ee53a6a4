"""Which data directory a command uses: the nearest `.cdm` at or above the current directory,
and never a new, empty one by surprise (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdm.cli.common import check_data_dir
from cdm.cli.errors import CliError
from cdm.settings import Settings, find_data_dir, load_settings

ROOT = Path(__file__).resolve().parents[2]


def cdm_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`cdm ARGS` run in ``folder`` with no CDM_ or MLflow setting from this process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDM_", "MLFLOW_"))}
    env.update(CDM_LOG_LEVEL="warning", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "cdm.cli", *args], cwd=folder, env=env, capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture
def nowhere(tmp_path: Path) -> Path:
    """A folder with no `.cdm` in it or above it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    if find_data_dir(folder) is not None:
        pytest.skip(f"a .cdm above {folder} ({find_data_dir(folder)}) would be found")
    return folder


def test_outside_any_project_a_command_refuses_to_start_a_new_database(nowhere: Path) -> None:
    (nowhere / "people.csv").write_text("external_id,email\nA-1,a@example.com\n")
    for args in (("import", "customers", "people.csv", "--source", "crm"), ("db", "status")):
        result = cdm_in(nowhere, *args)
        assert result.returncode == 1, result.stdout + result.stderr
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1, message
        assert "no CDM data directory" in message
        assert str(nowhere) in message
        assert "CDM_DATA_DIR" in message
    assert not (nowhere / ".cdm").exists()  # nothing was made


def test_below_a_project_a_command_uses_its_data_directory(
    tmp_path: Path, embedded_dir: Path, server_url: str
) -> None:
    """Like git finds its repository: from a folder below the project, the project's `.cdm`
    (here the test session's embedded server, linked in as the project's), and it says so."""
    project = tmp_path / "project"
    deeper = project / "data" / "2026"
    deeper.mkdir(parents=True)
    (project / ".cdm").symlink_to(embedded_dir, target_is_directory=True)
    result = cdm_in(deeper, "db", "status")
    assert result.returncode == 0, result.stderr
    assert "customer_changes" in result.stdout  # the migrations of that server's database
    assert f"data directory: {embedded_dir.resolve()}" in " ".join(result.stderr.split())


def test_settings_find_the_nearest_data_directory(tmp_path: Path, monkeypatch) -> None:
    outer, inner = tmp_path / ".cdm", tmp_path / "a" / ".cdm"
    (tmp_path / "a" / "b").mkdir(parents=True)
    outer.mkdir()
    monkeypatch.delenv("CDM_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert load_settings().data_dir == outer.resolve()
    inner.mkdir()
    assert load_settings().data_dir == inner.resolve()  # the nearest wins
    monkeypatch.setenv("CDM_DATA_DIR", str(tmp_path / "chosen"))
    assert load_settings().data_dir == (tmp_path / "chosen").resolve()  # asked for: as is


def test_only_commands_that_start_a_project_may_make_one(nowhere: Path, monkeypatch) -> None:
    monkeypatch.chdir(nowhere)
    monkeypatch.delenv("CDM_DATA_DIR", raising=False)
    monkeypatch.delenv("CDM_DATABASE_URL", raising=False)
    settings = load_settings()
    with pytest.raises(CliError, match="no CDM data directory"):
        check_data_dir(settings)
    check_data_dir(settings, creates=True)  # demo, serve, db migrate
    check_data_dir(Settings(data_dir=nowhere / "new"))  # asked for by name
    check_data_dir(Settings(database_url="postgresql://x@localhost/db"))  # no embedded one

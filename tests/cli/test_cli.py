"""The command line: real processes, real database, one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile

import pytest

# Never the checkout's own `.cdm` (a developer's models would serve in tests), nor a tracking
# URI an in-process MLflow client left in os.environ: a data directory of the test session's.
_DATA_DIR = tempfile.mkdtemp(prefix="cdm-cli-tests-")


def cdm(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env = {**inherited, "CDM_LOG_LEVEL": "warning", "CDM_DATA_DIR": _DATA_DIR, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "cdm.cli", *args], capture_output=True, text=True,
        env=full_env, timeout=timeout, check=False,
    )  # fmt: skip


def assert_one_line_error(result, *fragments: str):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_db_migrate_and_status(database_url):
    result = cdm("db", "migrate", env={"CDM_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    status = cdm("db", "status", env={"CDM_DATABASE_URL": database_url})
    assert status.returncode == 0, status.stderr
    assert "0001" in status.stdout
    assert "core" in status.stdout
    assert "pending" not in status.stdout


def test_unreachable_database_is_one_line():
    result = cdm("db", "migrate", env={"CDM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    assert_one_line_error(result, "cannot reach the database")


def test_bad_configuration_is_one_line():
    result = cdm("db", "status", env={"CDM_DATABASE_URL": "mysql://x"})
    assert_one_line_error(result, "CDM_DATABASE_URL", "postgresql://")
    result = cdm("db", "status", env={"CDM_PORT": "eighty"})
    assert_one_line_error(result, "CDM_PORT")


def test_serve_on_a_taken_port_is_one_line(database_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cdm("serve", "--port", str(port), env={"CDM_DATABASE_URL": database_url})
    assert_one_line_error(result, f"127.0.0.1:{port}", "--port")


def test_demo_on_a_taken_port_stops_before_preparing_or_printing_a_key(tmp_path):
    """Before minutes of seeding and training, and before the banner and the admin key of a
    server that could not start (issue 16)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cdm(
            "demo", "--port", str(port),
            env={"CDM_DATA_DIR": str(tmp_path / "demo"), "CDM_DATABASE_URL": ""},
        )  # fmt: skip
    assert_one_line_error(result, f"127.0.0.1:{port}", "--port")
    assert "cdm_" not in result.stdout  # no key
    assert not (tmp_path / "demo").exists()  # no database started, nothing seeded


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["serve", "--workers", "0"], "--workers"),
        (["seed", "--customers", "-5"], "--customers"),
        (["import", "products"], "files"),
        (["teleport"], "No such command"),
    ],
)
def test_bad_options_are_refused_in_one_line(args, says):
    result = cdm(*args)
    assert result.returncode == 2
    assert_one_line_error(result, says)


def test_without_a_database_url_the_embedded_server_is_used(embedded_dir):
    env = {"CDM_DATA_DIR": str(embedded_dir), "CDM_DATABASE_URL": ""}
    result = cdm("db", "migrate", env=env)
    assert result.returncode == 0, result.stderr
    status = cdm("db", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert "0001" in status.stdout
    assert (embedded_dir / "postgres" / "PG_VERSION").exists()


def test_seed_then_if_empty_does_nothing(database_url):
    env = {"CDM_DATABASE_URL": database_url}
    result = cdm("seed", "--customers", "40", "--seed", "3", "--now", "2025-06-01", env=env)
    assert result.returncode == 0, result.stderr
    assert "customers" in result.stdout
    again = cdm("seed", "--customers", "40", "--if-empty", env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing seeded" in again.stdout


def test_serve_on_embedded_postgres_stops_it_on_sigterm(tmp_path):
    import signal
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CDM_DATA_DIR": str(tmp_path), "CDM_DATABASE_URL": "",
           "CDM_LOG_LEVEL": "warning"}  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "cdm.cli", "serve", "--port", str(port)], env=env,
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "server did not become ready"
                time.sleep(0.3)
        pid_file = tmp_path / "postgres" / "postmaster.pid"
        assert pid_file.exists()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert not pid_file.exists()  # the embedded PostgreSQL was stopped too
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_every_lazy_command_is_found_in_the_module_that_registers_it():
    from cdm.cli.main import LAZY_COMMANDS, registered_commands

    found = {
        name: module
        for module in set(LAZY_COMMANDS.values())
        for name in registered_commands(module)
    }
    assert found == LAZY_COMMANDS


def test_help_lists_every_command_and_a_lazy_one_runs():
    listed = cdm("--help", env={"COLUMNS": "160"})
    assert listed.returncode == 0, listed.stderr
    for name in ("serve", "seed", "db", "dedupe", "import", "train", "models", "segment", "rfm"):
        assert f" {name} " in listed.stdout, name
    segment = cdm("segment", "export", "--help", env={"COLUMNS": "160"})
    assert segment.returncode == 0, segment.stderr
    assert "--format" in segment.stdout
    assert_one_line_error(cdm("no-such-command"), "No such command")

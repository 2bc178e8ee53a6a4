"""Start-up stays light: the API imports nothing a request without a model does not need.

LightGBM (with the pandas, scikit-learn and SciPy it pulls in), MLflow and matplotlib cost
seconds and hundreds of MB per worker; they are imported where models are loaded, trained or
plotted, and MLflow never in a server (its registry is asked from a child process). NumPy
itself (55-80 ms of a worker's start) comes with the first model loaded or score computed.
The `cdm` command imports a command's modules only when that command runs. Run in a fresh
interpreter, as a server worker starts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("lightgbm", "mlflow", "pandas", "matplotlib", "sklearn", "scipy", "numpy")


def imported_after(statement: str, watched: tuple[str, ...] = HEAVY) -> list[str]:
    """The ``watched`` packages and modules in ``sys.modules`` after ``statement`` in a new
    interpreter (a package counts when any of its modules is loaded)."""
    probe = (
        f"import json, sys\n{statement}\n"
        f"loaded = {{p for m in sys.modules for p in (m, m.split('.')[0])}}\n"
        f"print(json.dumps(sorted(loaded & {set(watched)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize(
    "statement",
    [
        "import api.app",
        # What a worker does before its first answer: build the app (no model loaded yet).
        "import api.app\nfrom cdm.settings import Settings\napi.app.create_app(Settings())",
        "from cdm.worker import app\napp()",  # the same, as a `cdm serve --workers N` worker
        "import cdm.cli.main",  # the `cdm serve` process, before it starts workers
    ],
)
def test_starting_the_server_imports_no_heavy_package(statement: str) -> None:
    assert imported_after(statement) == []


def test_numpy_comes_with_the_first_model_or_feature_frame() -> None:
    # The check above can fail: the same probe sees NumPy once a model's inputs are checked
    # against the definitions served (what loading a model does first) or rows are decoded.
    watched = ("numpy", "ml.recommendations")
    checked = imported_after(
        "from ml.serving.models import expected_hashes\nexpected_hashes()", watched
    )
    assert checked == ["ml.recommendations", "numpy"]
    decoded = imported_after(
        "from sql.matrix import decode_binary_copy\n"
        "header = b'PGCOPY\\n\\xff\\r\\n\\x00' + bytes(8)\n"
        "keys, matrix = decode_binary_copy(bytearray(header + b'\\xff\\xff'), 2)\n"
        "assert keys.shape == (0,) and matrix.shape == (0, 2)",
        watched,
    )
    assert decoded == ["numpy"]


def test_a_worker_builds_its_app_with_the_collector_paused_then_back_on() -> None:
    # What the import allocated is frozen (out of every later collection's sight) and the
    # collector runs again afterwards; a process that had it off keeps it off.
    probe = (
        "import gc, json\nfrom cdm.worker import app, collector_paused\n"
        "app()\non, frozen = gc.isenabled(), gc.get_freeze_count()\n"
        "gc.disable()\nwith collector_paused():\n    inside = gc.isenabled()\n"
        "print(json.dumps([on, frozen > 50_000, inside, gc.isenabled()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.splitlines()[-1]) == [True, True, False, False]


# Lighter, but each costs a worker milliseconds before its first answer, for features a
# request may never use: OIDC (PyJWT, cryptography) unless CDM_OIDC_ISSUER is set, e-mail
# and phone standardisation (writes and imports), the dashboard's Plotly; and the model
# registry's client, which the models' loading imports in the background once the server
# answers (test_a_worker_asks_the_registry_without_importing_mlflow below uses it).
NOT_FOR_START = (
    "jwt", "cryptography", "api.oidc", "email_validator", "dns", "idna", "phonenumbers",
    "plotly", "ml.registry",
)  # fmt: skip


@pytest.mark.parametrize(
    "statement",
    [
        "import api.app",
        "import api.app\nfrom cdm.settings import Settings\napi.app.create_app(Settings())",
        "from cdm.worker import app\napp()",
    ],
)
def test_starting_the_server_imports_no_optional_feature(statement: str) -> None:
    assert imported_after(statement, NOT_FOR_START) == []


def test_optional_features_import_their_modules_when_used() -> None:
    # The check above can fail: the same probe sees them once a feature is used.
    oidc = imported_after(
        "import api.app\nfrom cdm.settings import Settings\n"
        "api.app.create_app(Settings(oidc_issuer='https://id.example', oidc_audience='cdm'))",
        NOT_FOR_START,
    )
    assert {"api.oidc", "jwt", "cryptography"} <= set(oidc)
    written = imported_after(
        "from domain import standardize\n"
        "assert standardize.email(' Ann@Example.COM ') == 'ann@example.com'\n"
        "assert standardize.phone('030 1234567', 'de') == '+49301234567'",
        NOT_FOR_START,
    )
    assert {"email_validator", "phonenumbers"} <= set(written)
    assert "plotly" in imported_after(
        "from api.dashboard import _plotly_js\nassert _plotly_js().is_file()", NOT_FOR_START
    )


# What `cdm serve` needs none of before it starts its workers: the other commands' modules
# and what they bring (the CLI loads them when one of them runs).
NOT_FOR_SERVE = (
    *HEAVY, "pyarrow", "ml.registry", "ingestion.seed", "domain.merging",
    "cdm.cli.dedupe", "cdm.cli.segments", "cdm.cli.imports", "cdm.cli.gdpr", "cdm.cli.score",
    "cdm.cli.models", "cdm.cli.demo", "cdm.scoring", "api",
)  # fmt: skip


def test_the_cli_imports_a_command_s_modules_only_when_it_runs() -> None:
    assert imported_after("import cdm.cli.main", NOT_FOR_SERVE) == []
    # The check can fail: the same probe sees the modules a lazy command brings once asked for.
    asked = imported_after(
        "from cdm.cli.main import LAZY_COMMANDS, registered_commands\n"
        "registered_commands(LAZY_COMMANDS['segment'])",
        NOT_FOR_SERVE,
    )
    assert {"cdm.cli.segments", "pyarrow"} <= set(asked)


def test_the_console_script_imports_no_command_until_it_runs() -> None:
    # With `cdm serve --workers N` started through the `cdm` script, every worker first
    # re-runs the script (multiprocessing's "spawn" re-runs the parent's main module): what
    # the script imports, each worker imports before the API.
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["cdm"]
    module, _, name = script.partition(":")
    watched = ("typer", "rich", "pydantic", "cdm.cli.main", "cdm.settings")
    assert imported_after(f"from {module} import {name}", watched) == []
    # The check can fail: running it loads the command line.
    ran = imported_after(
        f"import sys\nfrom {module} import {name}\nsys.argv = ['cdm', '--help']\n"
        f"try:\n    {name}()\nexcept SystemExit:\n    pass",
        watched,
    )
    assert {"typer", "cdm.cli.main"} <= set(ran)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_with_workers_starts_them_without_importing_the_api(
    database_url: str, tmp_path: Path
) -> None:
    # `cdm serve --workers 2` up to the moment it hands over to uvicorn (replaced here by a
    # probe): the workers import the API themselves, the parent needs none of it.
    probe = (
        "import json, sys, uvicorn\n"
        "def run(app, **options):\n"
        "    loaded = {p for m in sys.modules for p in (m, m.split('.')[0])}\n"
        f"    print(json.dumps([app, sorted(loaded & {set(NOT_FOR_SERVE)!r})]))\n"
        "uvicorn.run = run\n"
        "from cdm.cli.main import serve\n"
        f"serve(host='127.0.0.1', port={free_port()}, workers=2)\n"
    )
    env = {**os.environ, "CDM_DATABASE_URL": database_url, "CDM_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    assert json.loads(out.splitlines()[-1]) == ["cdm.worker:app", []]


LOAD_MODELS = """
import asyncio, json, sys
from pathlib import Path
from cdm.scoring import build_scorer
from cdm.settings import Settings

async def load():
    settings = Settings(data_dir=Path({data_dir!r}), mlflow_tracking_uri=None)
    store = build_scorer(settings).store
    try:
        await store.refresh(600)  # however long the machine takes: not a test of timing
    finally:
        store.close()
    return {{t: [s.state, s.version] for t, s in store.status.items()}}

print(json.dumps(asyncio.run(load())), file=sys.stderr)
"""


def test_a_worker_asks_the_registry_without_importing_mlflow(tmp_path: Path) -> None:
    # The model load a worker runs (in the background) with an empty registry: the child
    # process answers "no champion" for every task; MLflow stays out of the worker.
    statement = LOAD_MODELS.format(data_dir=str(tmp_path))
    probe = subprocess.run(
        [sys.executable, "-c", f"{statement}\nprint(sorted({{m.split('.')[0] for m in "
         f"sys.modules}} & {set(HEAVY)!r}))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    statuses = json.loads(probe.stderr.strip().splitlines()[-1])
    assert statuses == {t: ["missing", None] for t in ("churn", "next_purchase", "upsell")}
    assert probe.stdout.strip() == "[]"
    assert (tmp_path / "mlflow.db").is_file()  # the child did open the registry
    remembered = json.loads((tmp_path / "models" / "churn" / "champion.json").read_text())
    assert remembered["version"] is None


def test_the_probe_sees_a_heavy_import() -> None:
    # The check above can fail: the same probe does see what a module imports.
    assert "lightgbm" in imported_after("import ml.training.boosting")
    assert "mlflow" in imported_after("from ml.registry import ModelRegistry as R\nR('sqlite://')")

"""Start-up stays light: the API imports nothing a request without a model does not need.

LightGBM (with the pandas, scikit-learn and SciPy it pulls in), MLflow and matplotlib cost
seconds and hundreds of MB per worker; they are imported where models are loaded, trained or
plotted. Run in a fresh interpreter, as a server worker starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("lightgbm", "mlflow", "pandas", "matplotlib", "sklearn", "scipy")


def imported_after(statement: str) -> list[str]:
    """The HEAVY packages in ``sys.modules`` after ``statement`` in a new interpreter."""
    probe = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
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
        "import cdm.cli.main",  # the `cdm serve` process, before it starts workers
    ],
)
def test_starting_the_server_imports_no_heavy_package(statement: str) -> None:
    assert imported_after(statement) == []


def test_the_probe_sees_a_heavy_import() -> None:
    # The check above can fail: the same probe does see what a module imports.
    assert "lightgbm" in imported_after("import ml.training.boosting")

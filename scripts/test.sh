#!/usr/bin/env bash
# Set up a virtualenv with the dev extras (once), then lint and run the whole test suite
# against a real PostgreSQL: the embedded one, or CDM_TEST_DATABASE_URL if set.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CDM_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e '.[dev]'
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/lint-imports"
exec "$venv/bin/python" -m pytest "$@"

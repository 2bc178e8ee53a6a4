#!/usr/bin/env bash
# Set up a virtualenv with the dev extras (once), then lint and run the whole test suite
# against a real PostgreSQL: the embedded one, or CDM_TEST_DATABASE_URL if set.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
install_project dev
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/lint-imports"
exec "$venv/bin/python" -m pytest "$@"

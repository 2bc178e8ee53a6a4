#!/usr/bin/env bash
# Set up a virtualenv (once), seed an empty database with synthetic customers, and serve the
# GraphQL API. With no CDM_DATABASE_URL, CDM runs its own PostgreSQL in ./.cdm.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CDM_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e .
"$venv/bin/cdm" seed --customers "${CDM_DEMO_CUSTOMERS:-20000}" --if-empty
exec "$venv/bin/cdm" serve "$@"

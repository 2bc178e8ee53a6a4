#!/usr/bin/env bash
# Set up a virtualenv (once), seed an empty database with synthetic customers, and serve the
# GraphQL API. With no CDM_DATABASE_URL, CDM runs its own PostgreSQL in ./.cdm.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
install_project
"$venv/bin/cdm" seed --customers "${CDM_DEMO_CUSTOMERS:-20000}" --if-empty
exec "$venv/bin/cdm" serve "$@"

#!/usr/bin/env bash
# Set up a virtualenv (once), then `cdm demo`: seed an empty database with synthetic
# customers, train and register the models (MLflow, in ./.cdm), score every customer, and
# serve the GraphQL API. With no CDM_DATABASE_URL, CDM runs its own PostgreSQL in ./.cdm.
# A second run reuses what the first made. Options go to `cdm demo` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
install_project
exec "$venv/bin/cdm" demo --customers "${CDM_DEMO_CUSTOMERS:-20000}" "$@"

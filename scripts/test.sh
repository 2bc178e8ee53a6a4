#!/usr/bin/env bash
# Set up a virtualenv with the dev extras (once), then lint and run the whole test suite
# against a real PostgreSQL: the embedded one, or CDM_TEST_DATABASE_URL if set.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
install_project dev
# The dashboard test drives a real, headless Chromium: install Debian's when it is missing
# and this machine lets us (otherwise that one test is skipped, saying why).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium for the dashboard test (apt-get)..."
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
  } >/dev/null 2>&1 || echo "could not install chromium: the dashboard test will be skipped"
fi
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/lint-imports"
exec "$venv/bin/python" -m pytest "$@"

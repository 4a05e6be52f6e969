#!/usr/bin/env bash
# Install the test dependencies and run every test: the Rust core's and the Python suite
# (against SQLite and a PostgreSQL server the suite starts itself). Works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-postgres.sh
python -m pip install --quiet --upgrade pip
python -m pip install --quiet ".[test]"

cargo test --locked -p ferrostore-core
python -m pytest -p no:cacheprovider "$@"

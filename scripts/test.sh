#!/usr/bin/env bash
# The test command: set up (scripts/setup.sh), check formatting and lints (the workspace's
# `[workspace.lints]`, warnings as errors), build the CLI the tests drive, run every test.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
cargo fmt --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --bin temblor
cargo test --workspace
# The Python package (python/tests): Session against `temblor run`, and the Ray pipeline.
"${TEMBLOR_VENV:-$HOME/.cache/temblor/venv}/bin/python" -m pytest -q python/tests

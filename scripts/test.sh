#!/usr/bin/env bash
# The test command: set up (scripts/setup.sh), build the CLI the tests drive, run every test.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
cargo build --bin temblor
cargo test --workspace

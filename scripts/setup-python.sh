#!/usr/bin/env bash
# Creates (or refreshes) the Python environment the tests use: $TEMBLOR_VENV, default
# ~/.cache/temblor/venv. Idempotent: pip skips what is already installed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${TEMBLOR_VENV:-$HOME/.cache/temblor/venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
# The `temblor` Python package (python/): its build and test tools, then its wheel, built here by
# maturin in the dev profile and target directory that `cargo build` uses, so the wheel shares
# the compiled crates and a rebuild with nothing changed takes seconds.
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/../python/requirements.txt"
wheels=${CARGO_TARGET_DIR:-$here/../target}/wheels
"$venv/bin/maturin" build --quiet --profile dev -m "$here/../python/Cargo.toml" \
    -i "$venv/bin/python" -o "$wheels" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall \
    "$wheels"/temblor-*.whl
echo "$venv"

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
echo "$venv"

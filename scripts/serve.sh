#!/usr/bin/env bash
# Install PromptPipe into .venv and run it on the embedded defaults: SQLite under
# ./state, the console transport (no WhatsApp account, no network), and the admin
# API on 127.0.0.1:8080. Extra arguments go to "promptpipe serve".
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

exec .venv/bin/promptpipe serve \
    --state-dir ./state \
    --transport console \
    --api-addr 127.0.0.1:8080 \
    "$@"

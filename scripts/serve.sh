#!/usr/bin/env bash
# Install PromptPipe into .venv and run it on the embedded defaults: SQLite under
# ./state, the console transport (no WhatsApp account, no network), and the admin
# API on 127.0.0.1:8080. Each of these three applies only when its environment
# variable (PROMPTPIPE_STATE_DIR, PROMPTPIPE_TRANSPORT, API_ADDR) is unset, so the
# variables and the flags documented in docs/configuration.md keep working. Extra
# arguments go to "promptpipe serve".
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

export PROMPTPIPE_STATE_DIR="${PROMPTPIPE_STATE_DIR:-./state}"
export PROMPTPIPE_TRANSPORT="${PROMPTPIPE_TRANSPORT:-console}"
export API_ADDR="${API_ADDR:-127.0.0.1:8080}"
exec .venv/bin/promptpipe serve "$@"

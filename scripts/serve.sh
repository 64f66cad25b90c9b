#!/usr/bin/env bash
# Install PromptPipe into .venv and run it on the embedded defaults: SQLite under
# ./state, the console transport (no WhatsApp account, no network), and the admin
# API on 127.0.0.1:8080. Each of these three applies only when neither the
# environment nor a .env file sets its variable (PROMPTPIPE_STATE_DIR,
# PROMPTPIPE_TRANSPORT, API_ADDR), so the variables, .env and the flags documented
# in docs/configuration.md keep working. Extra
# arguments go to "promptpipe serve".
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

# Set a default unless the environment or a .env file that promptpipe reads
# (./.env, ../.env, ../../.env) already sets the variable.
default() {
    local name="$1" value="$2"
    if [ -n "${!name+x}" ]; then
        return 0
    fi
    if grep -qsE "^[[:space:]]*(export[[:space:]]+)?${name}[[:space:]]*=" \
        .env ../.env ../../.env; then
        return 0
    fi
    export "$name=$value"
}
default PROMPTPIPE_STATE_DIR ./state
default PROMPTPIPE_TRANSPORT console
default API_ADDR 127.0.0.1:8080
exec .venv/bin/promptpipe serve "$@"

#!/usr/bin/env bash
# Install PromptPipe with its test and lint dependencies into .venv, check formatting,
# lint and types (ruff, strict mypy), then run the test suite.
#
# PostgreSQL: the tests use PROMPTPIPE_TEST_PG_DSN when it is set. Otherwise this
# script starts the local cluster if it is down, creates a throwaway database on
# 127.0.0.1:5432 and drops it again on exit. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'

start_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return 0
    fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        echo "starting the local PostgreSQL cluster"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && return 0
            sleep 1
        done
    fi
    echo "PostgreSQL is not running on 127.0.0.1:5432" >&2
    return 1
}

make_database() {
    local name="promptpipe_test_$$"
    # Trust authentication first; otherwise a password role made through the
    # postgres system account (peer authentication).
    if psql -h 127.0.0.1 -U postgres -d postgres -qAtc "CREATE DATABASE $name" >/dev/null 2>&1; then
        DROP_DATABASE="psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'DROP DATABASE IF EXISTS $name WITH (FORCE)'"
        export PROMPTPIPE_TEST_PG_DSN="postgresql://postgres@127.0.0.1:5432/$name"
        return 0
    fi
    if command -v su >/dev/null 2>&1 && id postgres >/dev/null 2>&1; then
        local password="pp_$$_$RANDOM"
        su postgres -c "psql -qAtc \"DROP ROLE IF EXISTS promptpipe_test; CREATE ROLE promptpipe_test LOGIN CREATEDB PASSWORD '$password'\"" >/dev/null
        su postgres -c "createdb -O promptpipe_test $name" >/dev/null
        DROP_DATABASE="su postgres -c 'dropdb --if-exists --force $name'"
        export PROMPTPIPE_TEST_PG_DSN="postgresql://promptpipe_test:$password@127.0.0.1:5432/$name"
        return 0
    fi
    echo "cannot create a test database on 127.0.0.1:5432" >&2
    return 1
}

DROP_DATABASE=""
if [ -z "${PROMPTPIPE_TEST_PG_DSN:-}" ]; then
    if start_postgres && make_database; then
        trap 'eval "$DROP_DATABASE" >/dev/null 2>&1 || true' EXIT
    elif [ "${CI:-}" = "true" ]; then
        echo "CI needs PostgreSQL for the store tests" >&2
        exit 1
    fi
fi

.venv/bin/ruff format --check --quiet .
.venv/bin/ruff check --quiet .
.venv/bin/mypy actors promptpipe
.venv/bin/python -m pytest "$@"

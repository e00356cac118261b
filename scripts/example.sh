#!/usr/bin/env bash
# Quick start of the django-cachekit example project, in one command:
#
#   scripts/example.sh              # venv, install, migrate, seed, then runserver
#   scripts/example.sh --no-serve   # everything but runserver (CI smoke tests)
#
# Environment:
#   HOST, PORT         where runserver listens (default 127.0.0.1:8000)
#   DATABASE=postgres  PostgreSQL on 127.0.0.1:5432 as user postgres (trust auth);
#                      PGDATABASE names the database (default cachekit_example),
#                      created when missing
#   REDIS_URL          e.g. redis://127.0.0.1:6379/0: cache in Redis (django-redis)
#   PYTHON             the Python to build the virtualenv with (default: pyenv's
#                      3.12 if present, else python3; 3.11 or newer)
#
# Safe to run again: the install is skipped while pyproject.toml is unchanged,
# migrate applies only what is new and seed_blog adds nothing to existing data.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv-example"
MANAGE="${ROOT}/example_project/manage.py"
SERVE=1

usage() {
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
    case "${arg}" in
        --no-serve) SERVE=0 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "example.sh: unknown option ${arg} (try --help)" >&2
            exit 2
            ;;
    esac
done

log() { printf '==> %s\n' "$*"; }

DATABASE="${DATABASE:-sqlite}"
case "${DATABASE}" in
    sqlite | postgres) ;;
    *)
        echo "example.sh: DATABASE must be sqlite or postgres, not '${DATABASE}'" >&2
        exit 2
        ;;
esac
export DATABASE

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "${PYTHON}"
        return
    fi
    local found
    found="$(compgen -G '/root/.pyenv/versions/3.12.*/bin/python' | sort -V | tail -n 1 || true)"
    if [[ -n "${found}" && -x "${found}" ]]; then
        echo "${found}"
    elif command -v python3 >/dev/null 2>&1; then
        command -v python3
    else
        echo "example.sh: no python3 found; install Python 3.11 or newer, or set PYTHON" >&2
        exit 1
    fi
}

# -- virtualenv and install ----------------------------------------------------------

if [[ ! -x "${VENV}/bin/python" ]]; then
    PY="$(pick_python)"
    if ! "${PY}" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "example.sh: ${PY} is Python $("${PY}" -c 'import platform; print(platform.python_version())'); 3.11 or newer is needed" >&2
        exit 1
    fi
    log "Creating ${VENV} with ${PY} ($("${PY}" -c 'import platform; print(platform.python_version())'))"
    "${PY}" -m venv "${VENV}"
fi
VPY="${VENV}/bin/python"

# Reinstall only when the project's metadata changes (or the install is broken).
STAMP="${VENV}/.example-install"
want="$(sha256sum <"${ROOT}/pyproject.toml" | cut -d' ' -f1)"
if [[ ! -f "${STAMP}" || "$(cat "${STAMP}")" != "${want}" ]] \
    || ! "${VPY}" -c 'import django_cachekit, django_redis' >/dev/null 2>&1; then
    log "Installing django-cachekit (editable) and its dependencies into ${VENV}"
    "${VPY}" -m pip install --quiet --disable-pip-version-check -e "${ROOT}"
    echo "${want}" >"${STAMP}"
else
    log "Dependencies are up to date in ${VENV}"
fi
if [[ "${DATABASE}" == postgres ]] && ! "${VPY}" -c 'import psycopg' >/dev/null 2>&1; then
    log "Installing psycopg[binary] for PostgreSQL"
    "${VPY}" -m pip install --quiet --disable-pip-version-check "psycopg[binary]"
fi

# -- database ----------------------------------------------------------------------

if [[ "${DATABASE}" == postgres ]]; then
    DBNAME="${PGDATABASE:-cachekit_example}"
    if command -v psql >/dev/null 2>&1 && command -v createdb >/dev/null 2>&1; then
        exists="$(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = '${DBNAME//\'/\'\'}'")"
        if [[ "${exists}" != 1 ]]; then
            log "Creating PostgreSQL database ${DBNAME}"
            createdb -h 127.0.0.1 -p 5432 -U postgres "${DBNAME}"
        fi
    else
        # No client tools: do the same with psycopg, which is installed above.
        DBNAME="${DBNAME}" "${VPY}" - <<'PY'
import os

import psycopg
from psycopg import sql

name = os.environ["DBNAME"]
with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True) as conn:
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
        print(f"==> Creating PostgreSQL database {name}")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
PY
    fi
fi

log "Migrating (${DATABASE})"
"${VPY}" "${MANAGE}" migrate --noinput --verbosity 1

log "Seeding the blog"
"${VPY}" "${MANAGE}" seed_blog

if [[ "${SERVE}" == 0 ]]; then
    log "Ready. Serve it with: $0"
    exit 0
fi

ADDR="${HOST:-127.0.0.1}:${PORT:-8000}"
log "Serving on http://${ADDR}/ (Ctrl-C to stop)"
exec "${VPY}" "${MANAGE}" runserver "${ADDR}"

#!/usr/bin/env bash
# The whole test suite on a fresh machine, in one command:
#
#   scripts/test.sh                 # every tox environment (Pythons × Djangos, lint, types, example)
#   scripts/test.sh -e py312-django61 -- -k freshness    # one environment, some tests
#
# It starts PostgreSQL, Redis and Memcached where they are down, puts the
# pyenv Pythons 3.11, 3.12 and 3.13 on PATH, installs tox in .venv-tox and runs it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

bash scripts/services.sh

if command -v pyenv >/dev/null 2>&1; then
    for minor in 3.11 3.12 3.13; do
        found="$(compgen -G "$(pyenv root)/versions/${minor}.*/bin" | sort -V | tail -n 1 || true)"
        [[ -n "${found}" ]] && PATH="${found}:${PATH}"
    done
    export PATH
fi

if [[ ! -x .venv-tox/bin/tox ]]; then
    PY="$(command -v python3.12 || command -v python3)"
    "${PY}" -m venv .venv-tox
    .venv-tox/bin/python -m pip install --quiet --disable-pip-version-check "tox>=4.11"
fi
exec .venv-tox/bin/tox "$@"

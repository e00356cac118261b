#!/usr/bin/env bash
# The whole test suite on a fresh machine, in one command:
#
#   scripts/test.sh                 # every tox environment in env_list, in parallel (as CI runs it)
#   scripts/test.sh -e py312-django61-locmem-sqlite -- -k freshness    # one environment, some tests
#   scripts/test.sh l               # the environments: Python, Django, cache and database each
#
# It starts PostgreSQL and Redis where they are down (and installs memcached, nginx
# and Chromium, scripts/services.sh), puts the
# pyenv Pythons 3.11, 3.12 and 3.13 on PATH, installs tox in .venv-tox and runs it.
# With no arguments: `tox run-parallel`, CACHEKIT_TEST_JOBS environments at a time
# (default: the CPUs plus one, the tests often wait on servers and subprocesses);
# a line per environment as it ends, the whole output of those that failed, and
# an exit status that is non-zero when any failed. Arguments go to tox unchanged.
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
if [[ $# -eq 0 ]]; then
    jobs="${CACHEKIT_TEST_JOBS:-$(($(nproc) + 1))}"
    spinner=()
    [[ -t 1 ]] || spinner=(--parallel-no-spinner)  # a log gets the blocks, not the spinner's frames
    exec .venv-tox/bin/tox run-parallel --parallel "${jobs}" "${spinner[@]}"
fi
exec .venv-tox/bin/tox "$@"

#!/usr/bin/env bash
# Regenerate docs/hit-rate.png: the example project's monitor page after live traffic.
#
#   scripts/screenshot.sh                    # about 5 minutes: writes docs/hit-rate.png
#   OUT=/tmp/hit-rate.png SECONDS_OF_TRAFFIC=30 scripts/screenshot.sh
#
# Runs tests/test_monitor_page.py's screenshot test (marked slow): it serves a copy
# of the example project on its own SQLite database and LocMem cache, sends it
# traffic while headless Chromium polls the page, and saves the page once the line
# charts have SECONDS_OF_TRAFFIC (default 270) seconds of points. Needs Debian's
# chromium (scripts/services.sh installs it) and the developer's .venv (made here
# when missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
OUT="${OUT:-${ROOT}/docs/hit-rate.png}"

bash scripts/services.sh
if [[ ! -x .venv/bin/pytest ]]; then
    PY="$(command -v python3.12 || command -v python3)"
    "${PY}" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
fi
CACHEKIT_MONITOR_SCREENSHOT="${OUT}" CACHEKIT_MONITOR_SECONDS="${SECONDS_OF_TRAFFIC:-270}" \
    exec .venv/bin/pytest -p no:cacheprovider -q -m slow tests/test_monitor_page.py -k screenshot

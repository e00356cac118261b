#!/usr/bin/env bash
# Regenerate docs/hit-rate.png: the example project's monitor page after realistic traffic.
#
#   scripts/screenshot.sh                    # writes docs/hit-rate.png
#   OUT=/tmp/hit-rate.png scripts/screenshot.sh
#
# Sets the example project up (scripts/example.sh --no-serve), serves it on a
# loopback port (PORT, default 8765) with an empty LocMem cache, sends a bounded
# mix of requests (popular articles read far more often than others, list, author,
# category and stats pages, one request in 50 posting a comment), takes the screenshot with
# headless Chromium from Debian's packages (installed with apt-get when missing,
# which needs root), then deletes the comments it posted.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-${ROOT}/docs/hit-rate.png}"
PORT="${PORT:-8765}"
REQUESTS="${REQUESTS:-1000}"
VISITOR="screenshot visitor"

log() { printf '==> %s\n' "$*"; }

if ! command -v chromium >/dev/null 2>&1; then
    log "Installing Chromium from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

unset REDIS_URL DATABASE
bash "${ROOT}/scripts/example.sh" --no-serve
VPY="${ROOT}/.venv-example/bin/python"
MANAGE="${ROOT}/example_project/manage.py"

log "Serving the example on http://127.0.0.1:${PORT}/"
"${VPY}" "${MANAGE}" runserver "127.0.0.1:${PORT}" --noreload >/tmp/cachekit-screenshot-server.log 2>&1 &
SERVER=$!
PROFILE="$(mktemp -d)"
cleanup() {
    kill "${SERVER}" 2>/dev/null || true
    wait "${SERVER}" 2>/dev/null || true
    rm -rf "${PROFILE}"
}
trap cleanup EXIT

log "Sending ${REQUESTS} requests"
"${VPY}" - "http://127.0.0.1:${PORT}" "${REQUESTS}" "${VISITOR}" <<'PY'
import http.cookiejar
import random
import re
import sys
import time
import urllib.parse
import urllib.request

base, total, visitor = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def get(path, data=None):
    body = urllib.parse.urlencode(data).encode() if data else None
    with opener.open(base + path, data=body, timeout=30) as response:
        return response.read().decode()


for _ in range(100):  # wait for the server, at most 20 seconds
    try:
        home = get("/")
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("the example server did not answer")

pages = [home] + [get(f"/?page={n}") for n in (2, 3)]
articles = sorted({int(a) for page in pages for a in re.findall(r'href="/articles/(\d+)/"', page)})
authors = sorted({int(a) for page in pages for a in re.findall(r'href="/authors/(\d+)/"', page)})
categories = sorted({c for page in pages for c in re.findall(r'href="/categories/([\w-]+)/"', page)})
if not articles:
    sys.exit("no articles found on the home page: was the blog seeded?")

rng = random.Random(2024)
popular = rng.sample(articles, len(articles))  # a few articles get most of the reads (Zipf)
weights = [1 / (rank + 1) for rank in range(len(popular))]


def article():
    return rng.choices(popular, weights)[0]


posted = 0
for i in range(total):
    roll = rng.random()
    if roll < 0.55:
        get(f"/articles/{article()}/")
    elif roll < 0.70:
        get("/" if rng.random() < 0.7 else f"/?page={rng.randint(2, 4)}")
    elif roll < 0.80:
        get(f"/authors/{rng.choice(authors)}/")
    elif roll < 0.88:
        get(f"/categories/{rng.choice(categories)}/")
    elif roll < 0.98:
        get("/stats/")
    else:
        pk = article()
        page = get(f"/articles/{pk}/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        get(f"/articles/{pk}/", {"csrfmiddlewaretoken": token, "author_name": visitor, "body": f"Comment {i}."})
        posted += 1
print(f"sent {total} requests, posted {posted} comments")
PY

log "Taking the screenshot into ${OUT}"
mkdir -p "$(dirname "${OUT}")"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="${PROFILE}" --hide-scrollbars --window-size=1000,900 \
    --screenshot="${OUT}" "http://127.0.0.1:${PORT}/monitor/" 2>/dev/null

cleanup
trap - EXIT
log "Deleting the comments the traffic posted"
"${VPY}" "${MANAGE}" shell -c \
    "from blog.models import Comment; print(Comment.objects.filter(author_name='${VISITOR}').delete()[0], 'deleted')"
log "Done: ${OUT}"

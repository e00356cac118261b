"""The example project's monitor page in headless Chromium: after traffic, its
line charts hold a polyline per namespace, redrawn from ``data.json`` polls.

Serves a copy of the example project (SQLite, LocMem) on a loopback port.
``CACHEKIT_MONITOR_SCREENSHOT=docs/hit-rate.png`` also saves the page there
after a few minutes of (virtual) polling under traffic.
"""

import base64
import fcntl
import http.cookiejar
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.programs("chromium"),
    # Under CI or tox a missing chromium stops the run before the first test (tests/services.py).
    pytest.mark.skipif(
        CHROMIUM is None and not (os.environ.get("CI") or os.environ.get("CACHEKIT_TEST_REQUIRE_SERVICES")),
        reason="needs Debian's chromium (scripts/services.sh installs it)",
    ),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The example project served from a copy with its own SQLite database: ``http://127.0.0.1:<port>``."""
    home = tmp_path_factory.mktemp("example") / "example_project"
    shutil.copytree(
        ROOT / "example_project", home, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__", "staticfiles")
    )
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE", "DJANGO_SETTINGS_MODULE")}
    env.update(PYTHONPATH=str(ROOT), DEBUG="1", CACHE_KEY_PREFIX=f"monitor-page-{os.getpid()}")
    manage = [sys.executable, str(home / "manage.py")]
    for command in (["migrate", "--no-input", "-v", "0"], ["seed_blog", "--articles", "40", "--seed", "5"]):
        subprocess.run([*manage, *command], env=env, cwd=home, check=True, capture_output=True, timeout=300)
    port = free_port()
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], env=env, cwd=home, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(base, "/monitor/data.json")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the example server did not start: {(home / 'server.log').read_text()}")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return response.read().decode()


def browse(base, rng, times):
    """Pages that read models, a cached view, cached functions and fragments (an inner one too)."""
    home = get(base, "/")
    articles = sorted({int(a) for a in re.findall(r'href="/articles/(\d+)/"', home)})
    authors = sorted({int(a) for a in re.findall(r'href="/authors/(\d+)/"', home)})
    for _ in range(times):
        get(base, f"/articles/{rng.choice(articles[:8])}/")
        get(base, "/" if rng.random() < 0.7 else "/?page=2")
        get(base, f"/authors/{rng.choice(authors)}/")
        get(base, "/stats/")


class Charts(HTMLParser):
    """The polylines of each chart of a dumped page: ``{svg id: {namespace: points}}``."""

    def __init__(self):
        super().__init__()
        self.charts = {}
        self.svg = None
        self.legend = []

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "svg":
            self.svg = found.get("id")
            self.charts.setdefault(self.svg, {})
        elif tag == "polyline":
            self.charts[self.svg][found["data-namespace"]] = found["points"].split()
        elif tag == "li" and "data-namespace" in found:
            self.legend.append(found["data-namespace"])

    def handle_endtag(self, tag):
        if tag == "svg":
            self.svg = None


def chromium(profile, *args):
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_charts_draw_a_line_per_namespace_after_traffic(server, tmp_path):
    get(server, "/monitor/data.json")  # the server's reading the page's first interval starts from
    browse(server, random.Random(1), 5)
    expected = {row["namespace"] for row in json.loads(get(server, "/monitor/data.json"))["rows"]}
    browse(server, random.Random(2), 3)  # after this reading: the page's first interval has lookups again
    # The page draws its first interval at once, then polls data.json every 2 s of (virtual) time.
    html = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", f"{server}/monitor/")
    charts = Charts()
    charts.feed(html)
    assert {"blog.article", "view:blog.views.article_list", "blog.stats.site_totals", "fragment:comment"} <= expected
    assert set(charts.legend) == expected
    lookups = charts.charts["lookups-chart"]
    assert set(lookups) == expected  # a line per namespace with lookups
    assert all(len(points) >= 3 for points in lookups.values())  # the first interval and two polls
    assert set(charts.charts["rate-chart"]) == expected  # every one was read during the first interval
    assert "Views" in html and "inside fragment:article: looked up only when fragment:article misses" in html
    status = html.split('id="status">', 1)[1].split("</p>", 1)[0]
    assert "could not be refreshed" not in status  # every poll was answered


class Browser:
    """Headless Chromium driven in real time over ``--remote-debugging-pipe`` (DevTools messages on fds 3 and 4)."""

    def __init__(self, profile):
        to_chrome, self._ours = os.pipe()
        self._theirs, from_chrome = os.pipe()
        fds = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome)]

        def pipes():  # in the child: the two ends where Chromium looks for them
            os.dup2(fds[0], 3)
            os.dup2(fds[1], 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=pipes, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for fd in (to_chrome, from_chrome, *fds):
            os.close(fd)
        self._buffer = b""
        self._id = 0

    def send(self, method, session=None, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._ours, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._theirs, 1 << 16)
                assert chunk, "Chromium closed its DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def open(self, url, width, height):
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send(
            "Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1, mobile=False
        )
        self.send("Page.navigate", session, url=url)
        return session

    def close(self):
        try:
            self.send("Browser.close")
        except (AssertionError, OSError):
            pass
        self.process.wait(timeout=30)
        os.close(self._ours)
        os.close(self._theirs)


def test_screenshot_after_polling_in_real_time(server, tmp_path):
    """``docs/hit-rate.png``: the page after polling for a while (CACHEKIT_MONITOR_SECONDS) under traffic."""
    out = Path(os.environ.get("CACHEKIT_MONITOR_SCREENSHOT") or tmp_path / "hit-rate.png")
    seconds = float(os.environ.get("CACHEKIT_MONITOR_SECONDS") or 7)
    stop = threading.Event()

    def traffic():
        rng = random.Random(3)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        articles = sorted({int(a) for a in re.findall(r'href="/articles/(\d+)/"', get(server, "/"))})
        n = 0
        while not stop.is_set():
            browse(server, rng, 1)
            n += 1
            if n % 12 == 0:  # a comment now and then: invalidations, and the hit rate dips
                url = f"{server}/articles/{rng.choice(articles[:8])}/"
                page = opener.open(url, timeout=30).read().decode()
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
                form = {"csrfmiddlewaretoken": token, "author_name": "monitor", "body": f"Comment {n}."}
                opener.open(url, data=urllib.parse.urlencode(form).encode(), timeout=30).read()
            stop.wait(0.1)

    browser = Browser(tmp_path / "profile")  # before the thread: Popen's preexec_fn is unsafe beside threads
    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        session = browser.open(f"{server}/monitor/", 1000, 1500)
        time.sleep(seconds)  # the page polls every 2 s meanwhile: the real-time behaviour is the point
        html = browser.send("Runtime.evaluate", session, expression="document.documentElement.outerHTML")
        shot = browser.send("Page.captureScreenshot", session, format="png")
    finally:
        stop.set()
        thread.join(timeout=60)
        browser.close()
    charts = Charts()
    charts.feed(html["result"]["value"])
    lookups = charts.charts["lookups-chart"]
    assert {"blog.article", "fragment:article-item"} <= set(lookups)
    assert len(lookups["blog.article"]) >= seconds // 2 - 1  # a point per poll
    out.write_bytes(base64.b64decode(shot["data"]))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

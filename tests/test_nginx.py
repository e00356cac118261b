"""A real shared cache in front of the example blog: nginx with proxy_cache and
proxy_cache_revalidate, over gunicorn, Redis and PostgreSQL.

Public pages are served by nginx, and once stale revalidated with a 304 from
the app; personal pages and responses that set cookies are never stored; a
model write shows as soon as nginx revalidates its copy.
"""

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import CACHE, DB

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "example_project" / "manage.py"
# The example list page's s-maxage (blog.views.SHARED_MAX_AGE): how long nginx serves it before revalidating.
SHARED_MAX_AGE = 2
# The Redis database the stack caches in. Nothing flushes it: the stack deletes its own keys (by prefix).
NGINX_REDIS_DB = 11

pytestmark = [
    pytest.mark.slow,
    pytest.mark.programs("nginx"),
    pytest.mark.skipif(
        CACHE != "django-redis" or DB != "postgres",
        reason="the example project behind nginx caches in Redis with django-redis and stores in PostgreSQL "
        "(gunicorn, nginx and a writer share them): run on the django-redis + postgres combination",
    ),
]


def redis_url():
    """The test Redis server, in a database of its own: a flush of the suite's
    database (by hand, or by a suite of an older version running beside) would
    give every tag a new version, so nginx's ETag would no longer match."""
    url = urllib.parse.urlsplit(os.environ.get("CACHEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/1"))
    return urllib.parse.urlunsplit(url._replace(path=f"/{NGINX_REDIS_DB}"))


def require(program):
    found = shutil.which(program) or (f"/usr/sbin/{program}" if os.path.exists(f"/usr/sbin/{program}") else None)
    if found is None:
        message = f"{program} is not installed (scripts/services.sh installs it)"
        if os.environ.get("CI") or os.environ.get("CACHEKIT_TEST_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port} within {timeout}s:\n{log.read_text()[-3000:]}")


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


NGINX_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format cachelog '$request_method $request_uri $status cache=$upstream_cache_status upstream=$upstream_status';
    access_log {tmp}/access.log cachelog;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;
    proxy_cache_path {tmp}/cache levels=1:2 keys_zone=blog:1m max_size=10m inactive=60s use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_set_header Host $http_host;
            proxy_cache blog;
            proxy_cache_revalidate on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""


class Stack:
    """The example project behind nginx, with its own database and cache prefix."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.nginx_bin = require("nginx")
        self.port = free_port()
        self.app_port = free_port()
        self.database = f"cachekit_nginx_{os.getpid()}"
        self.prefix = f"ck-nginx-{os.getpid()}"
        self.env = {
            **os.environ,
            "DATABASE": "postgres",
            "PGDATABASE": self.database,
            "REDIS_URL": redis_url(),
            "CACHE_KEY_PREFIX": self.prefix,
            "DEBUG": "0",
            "SECRET_KEY": "nginx-test",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        self.procs = []

    def manage(self, *args):
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def start(self):
        import psycopg

        with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}"')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--noinput", "--verbosity", "0")
        self.manage("seed_blog", "--authors", "3", "--articles", "12", "--comments", "2", "--tags", "4", "--seed", "7")

        app_log = self.tmp / "gunicorn.log"
        app = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--chdir", str(ROOT / "example_project")]
            + ["--bind", f"127.0.0.1:{self.app_port}", "--workers", "2", "--timeout", "30"],
            env=self.env,
            stdout=app_log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append((app, signal.SIGTERM))
        wait_for_port(self.app_port, app, app_log)

        for name in ("client_body", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp", "cache", "logs"):
            (self.tmp / name).mkdir(exist_ok=True)
        conf = self.tmp / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temporary directory
        conf.write_text(NGINX_CONF.format(user=user, tmp=self.tmp, port=self.port, app_port=self.app_port))
        nginx_log = self.tmp / "nginx.out"
        nginx = subprocess.Popen(
            [self.nginx_bin, "-p", str(self.tmp), "-c", str(conf), "-g", "daemon off;"],
            stdout=nginx_log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append((nginx, signal.SIGQUIT))
        wait_for_port(self.port, nginx, nginx_log)

    def close(self):
        for proc, sig in reversed(self.procs):
            stop(proc, sig)
        try:
            import psycopg

            with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            import redis

            client = redis.Redis.from_url(self.env["REDIS_URL"])
            keys = list(client.scan_iter(f"*{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()

    def get(self, path, headers=None, method="GET", body=None, port=None):
        port = port or self.port
        logged = len(self.log_lines())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
            response = conn.getresponse()
            result = response.status, response.headers, response.read().decode()
        finally:
            conn.close()
        if port == self.port:
            self.log_since(logged, 1)  # nginx logs a request after answering it: wait for its line
        return result

    def log_lines(self):
        path = self.tmp / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def log_since(self, mark, count=1):
        # nginx writes a line when a request ends; give it a moment to land.
        deadline = time.monotonic() + 2
        lines = self.log_lines()[mark:]
        while len(lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)
            lines = self.log_lines()[mark:]
        return lines

    def login(self, username, password):
        _, headers, page = self.get("/login/")
        csrf = re.search(r"csrftoken=([^;]+)", " ".join(headers.get_all("Set-Cookie"))).group(1)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        status, headers, _ = self.get(
            "/login/",
            method="POST",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf}"},
        )
        assert status == 302, status
        session = re.search(r"sessionid=([^;]+)", " ".join(headers.get_all("Set-Cookie"))).group(1)
        return f"csrftoken={csrf}; sessionid={session}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require("nginx")
    pytest.importorskip("gunicorn")
    tmp = tmp_path_factory.mktemp("nginx")
    stack = Stack(tmp)
    try:
        stack.start()
        yield stack
    finally:
        stack.close()


def expire(stack):
    """Wait until nginx's copies of the public pages are stale."""
    time.sleep(SHARED_MAX_AGE + 1.1)


def test_public_list_is_served_by_nginx_then_revalidated_with_a_304(stack):
    expire(stack)
    first_status, first_headers, first_body = stack.get("/")
    assert first_status == 200
    assert first_headers["X-Cache-Status"] in ("MISS", "EXPIRED", "REVALIDATED")
    assert "s-maxage=2" in first_headers["Cache-Control"] and "public" in first_headers["Cache-Control"]
    etag = first_headers["ETag"]

    mark = len(stack.log_lines())
    status, headers, body = stack.get("/")
    assert (status, headers["X-Cache-Status"], body) == (200, "HIT", first_body)
    assert stack.log_since(mark) == ["GET / 200 cache=HIT upstream=-"]

    expire(stack)
    mark = len(stack.log_lines())
    status, headers, body = stack.get("/")
    assert (status, headers["X-Cache-Status"], body) == (200, "REVALIDATED", first_body)
    assert headers["ETag"] == etag
    # nginx asked the app with the validators it had stored; the app answered 304.
    assert stack.log_since(mark) == ["GET / 200 cache=REVALIDATED upstream=304"]
    status, headers, _ = stack.get("/")
    assert headers["X-Cache-Status"] == "HIT"


def test_a_write_shows_once_nginx_revalidates(stack):
    stack.get("/")
    stack.manage(
        "shell",
        "-c",
        "from blog.models import Article; a = Article.objects.order_by('-published_at', '-pk').first(); "
        "a.title = 'Rewritten behind nginx'; a.save()",
    )
    expire(stack)
    mark = len(stack.log_lines())
    status, headers, body = stack.get("/")
    assert status == 200
    assert "Rewritten behind nginx" in body
    assert headers["X-Cache-Status"] == "EXPIRED"
    assert stack.log_since(mark) == ["GET / 200 cache=EXPIRED upstream=200"]
    status, headers, body = stack.get("/")
    assert headers["X-Cache-Status"] == "HIT" and "Rewritten behind nginx" in body


def test_personal_pages_are_never_stored(stack):
    cookie = stack.login("demo", "demo")
    mark = len(stack.log_lines())
    for _ in range(3):
        status, headers, body = stack.get("/dashboard/", headers={"Cookie": cookie})
        assert status == 200
        assert "Signed in as <strong>demo</strong>" in body
        assert "private" in headers["Cache-Control"]
        assert headers["X-Cache-Status"] == "MISS"
    assert stack.log_since(mark, 3) == ["GET /dashboard/ 200 cache=MISS upstream=200"] * 3
    # Someone else, without the session, is sent to the login page, not shown the dashboard.
    status, headers, body = stack.get("/dashboard/")
    assert status == 302 and headers["Location"].startswith("/login/")
    assert headers["X-Cache-Status"] == "MISS"
    # nginx keeps a client's own validators from the app when it caches; asked
    # directly, the app answers the browser's revalidation with a 304, and only
    # for the user the ETag was made for.
    etag = stack.get("/dashboard/", headers={"Cookie": cookie})[1]["ETag"]
    status, _, _ = stack.get("/dashboard/", headers={"Cookie": cookie, "If-None-Match": etag}, port=stack.app_port)
    assert status == 304
    other = stack.login("demo", "demo")  # another session of the same account: another identity
    status, _, body = stack.get("/dashboard/", headers={"Cookie": other, "If-None-Match": etag}, port=stack.app_port)
    assert status == 200 and "Signed in as <strong>demo</strong>" in body


def test_responses_that_set_cookies_are_never_stored(stack):
    mark = len(stack.log_lines())
    for _ in range(2):
        status, headers, _ = stack.get("/articles/1/")
        assert status == 200
        assert "csrftoken=" in " ".join(headers.get_all("Set-Cookie"))
        assert headers["X-Cache-Status"] == "MISS"
    assert stack.log_since(mark, 2) == ["GET /articles/1/ 200 cache=MISS upstream=200"] * 2

#!/usr/bin/env bash
# Start the services the tests use, where they are down: PostgreSQL and Redis
# (from the machine's packages); install from Debian's packages, when missing,
# the programs the tests start themselves: memcached (each run starts a private
# server on a free port), nginx and Chromium (the slow tests). Safe to run again.
set -euo pipefail

log() { printf '==> %s\n' "$*"; }
as_root() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for NAME PORT
    for _ in $(seq 1 100); do
        port_open "$2" && return 0
        sleep 0.1
    done
    echo "services.sh: $1 did not start on 127.0.0.1:$2" >&2
    exit 1
}

if ! port_open 5432; then
    log "Starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
    wait_for PostgreSQL 5432
fi

# tests/replica.py makes a streaming standby with pg_basebackup: it needs replication from loopback.
pg_hba="/etc/postgresql/$(ls /etc/postgresql | sort -V | tail -n 1)/main/pg_hba.conf"
if [[ -f "$pg_hba" ]] && ! as_root grep -Eq '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32' "$pg_hba"; then
    log "Allowing replication connections from 127.0.0.1 in $pg_hba"
    echo "host replication all 127.0.0.1/32 trust" | as_root tee -a "$pg_hba" >/dev/null
    psql -h 127.0.0.1 -U postgres -d postgres -Atqc "SELECT pg_reload_conf()" >/dev/null
fi
# Test environments run side by side (scripts/test.sh) each copy the server with pg_basebackup while the
# others write: the WAL a copy starts from must outlive their checkpoints, or the copy fails with
# "requested WAL segment ... has already been removed".
if [[ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atqc "SHOW wal_keep_size")" == "0" ]]; then
    log "Keeping 512 MB of WAL for the standbys of parallel test environments"
    psql -h 127.0.0.1 -U postgres -d postgres -Atqc "ALTER SYSTEM SET wal_keep_size = '512MB'" >/dev/null
    psql -h 127.0.0.1 -U postgres -d postgres -Atqc "SELECT pg_reload_conf()" >/dev/null
fi

if ! port_open 6379; then
    log "Starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis 6379
fi

# memcached: the suite starts its own on a free loopback port (tests/conftest.py), never a shared 11211.
if ! command -v memcached >/dev/null 2>&1; then
    log "Installing Memcached"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q memcached >/dev/null \
        || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q memcached >/dev/null; }
fi
# nginx: tests/test_nginx.py runs its own instance, from a temporary config, in front of the example project.
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
    log "Installing nginx"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null \
        || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null; }
fi
# Chromium: tests/test_monitor_page.py draws the monitor page in it, headless.
if ! command -v chromium >/dev/null 2>&1; then
    log "Installing Chromium"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
        || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
log "PostgreSQL and Redis are up; memcached, nginx and chromium are installed"

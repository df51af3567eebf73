#!/usr/bin/env bash
# Start the real servers the integration tests talk to, and print the environment they read.
#   eval "$(sudo bash scripts/ci-services.sh)"     # then: .venv/bin/python -m pytest
# Runs as root; idempotent: installs only what is missing, starts only what is stopped.
# Everything except the final export lines goes to stderr, so `eval "$(...)"` stays clean.
set -euo pipefail

PG_USER=${DEFECTSCOPE_PG_USER:-defectscope}
PG_PASSWORD=${DEFECTSCOPE_PG_PASSWORD:-defectscope}
PG_DB=${DEFECTSCOPE_PG_DB:-defectscope_test}

log() { echo "ci-services: $*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "run as root (it installs Debian packages and starts system services)"
    exit 1
  fi
}

apt_install() {
  # apt_install PACKAGE...: install the Debian packages that are not installed yet.
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}

start_postgres() {
  # PostgreSQL on localhost:5432 with a password role and the database defectscope_test.
  apt_install postgresql
  local version cluster_line
  cluster_line=$(pg_lsclusters --no-header | head -n 1)
  if [ -z "$cluster_line" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    log "creating PostgreSQL $version cluster main"
    pg_createcluster "$version" main >&2
    cluster_line=$(pg_lsclusters --no-header | head -n 1)
  fi
  version=$(echo "$cluster_line" | awk '{print $1}')
  local cluster port
  cluster=$(echo "$cluster_line" | awk '{print $2}')
  port=$(echo "$cluster_line" | awk '{print $3}')
  if ! echo "$cluster_line" | grep -q online; then
    log "starting PostgreSQL $version/$cluster on port $port"
    pg_ctlcluster "$version" "$cluster" start >&2
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h localhost -p "$port" && break
    sleep 1
  done
  pg_isready -q -h localhost -p "$port" || { log "PostgreSQL did not become ready"; exit 1; }
  local psql=(runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA)
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != "1" ]; then
    "${psql[@]}" -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" >&2
  fi
  if [ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
    "${psql[@]}" -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2
  fi
  log "PostgreSQL ready: database $PG_DB on localhost:$port"
  echo "export DEFECTSCOPE_TEST_POSTGRES_URL=postgresql+psycopg://$PG_USER:$PG_PASSWORD@localhost:$port/$PG_DB"
}

start_mosquitto() {
  # The mosquitto binary for tests/line/test_mqtt.py (each test starts its own broker on a free
  # port), and a broker on 127.0.0.1:1883 for `defectscope run --mqtt mqtt://localhost:1883`.
  apt_install mosquitto
  local binary
  binary=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  [ -x "$binary" ] || { log "mosquitto not found after installing it"; exit 1; }
  if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    local config=/run/defectscope-mosquitto.conf
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' >"$config"
    log "starting mosquitto on 127.0.0.1:1883"
    "$binary" -d -c "$config" >&2
    for _ in $(seq 1 50); do
      (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break
      sleep 0.1
    done
    (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null || { log "mosquitto did not start"; exit 1; }
  fi
  log "mosquitto ready: $binary, broker on 127.0.0.1:1883"
  echo "export DEFECTSCOPE_MOSQUITTO=$binary"
}

install_chromium() {
  # Debian's Chromium for the dashboard's browser test (Playwright drives it; it never downloads
  # a browser of its own).
  apt_install chromium
  echo "export DEFECTSCOPE_CHROMIUM=$(command -v chromium || echo /usr/bin/chromium)"
}

main() {
  need_root
  start_postgres
  start_mosquitto
  install_chromium
}

main "$@"

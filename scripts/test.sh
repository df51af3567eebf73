#!/usr/bin/env bash
# The test suite exactly as CI runs it, on a fresh machine:
#   bash scripts/test.sh [PYTEST ARGS...]
# 1. sets up .venv with the dev extras (scripts/setup.sh --dev),
# 2. installs where missing and starts the real servers the tests talk to (mosquitto, PostgreSQL,
#    Chromium: scripts/ci-services.sh, as root or through sudo), unless the three
#    DEFECTSCOPE_* variables below are already set,
# 3. runs pytest with DEFECTSCOPE_REQUIRE_SERVICES=1, so a test whose server is missing fails with
#    one line saying how to provide it instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --dev

if [ -z "${DEFECTSCOPE_TEST_POSTGRES_URL:-}" ] || [ -z "${DEFECTSCOPE_MOSQUITTO:-}" ] \
    || [ -z "${DEFECTSCOPE_CHROMIUM:-}" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    services=$(bash scripts/ci-services.sh)
  elif command -v sudo >/dev/null 2>&1; then
    echo "test.sh: starting the test servers with sudo (scripts/ci-services.sh)" >&2
    services=$(sudo bash scripts/ci-services.sh)
  else
    echo "test.sh: starting mosquitto, PostgreSQL and Chromium needs root (or sudo): run it as root," \
      "or start them yourself and set DEFECTSCOPE_TEST_POSTGRES_URL, DEFECTSCOPE_MOSQUITTO and DEFECTSCOPE_CHROMIUM" >&2
    exit 1
  fi
  eval "$services"
fi

export DEFECTSCOPE_REQUIRE_SERVICES=1
# Torch's OpenMP threads spin-wait by default, which slows everything tenfold when the CPU is shared.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec .venv/bin/python -m pytest "$@"

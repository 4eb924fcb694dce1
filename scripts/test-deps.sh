#!/usr/bin/env bash
# Installs what the tests need beyond Go: Debian's chromium for the browser
# tests, and, for tether.js's Node tests, Node.js with npm (when missing) and
# the npm packages of web/js, from its committed package-lock.json (npm ci).
# Called by `make test`; apt-get runs only for what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
apt_install() {
  $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

if ! command -v chromium >/dev/null 2>&1; then
  echo "test-deps: installing chromium (apt-get) for the browser tests" >&2
  apt_install chromium
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "test-deps: installing nodejs and npm (apt-get) for tether.js's tests" >&2
  apt_install nodejs npm
fi

# The lockfile pins every package (npm ci refuses one that does not match
# package.json); npm ci starts from an empty node_modules each time.
(cd web/js && npm ci --no-audit --no-fund --loglevel=error)

#!/usr/bin/env bash
# Installs what the tests need beyond Go: Debian's chromium for the browser tests.
# Called by `make test`; does nothing when everything is there.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  echo "test-deps: installing chromium (apt-get) for the browser tests" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends chromium >/dev/null; }
fi

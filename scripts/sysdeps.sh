#!/usr/bin/env bash
# Installs the system packages the test suite needs, when they are missing:
#   chromium    - browser tests (Playwright drives Debian's Chromium; `playwright install` cannot download here)
#   postgresql  - the ledger's PostgreSQL test starts its own throw-away server
#   openjdk-17-jre-headless - Java for pyspark's local[2] in the DuckDB-Spark conformance test
# Needs root (CI runs as root) or passwordless sudo; otherwise it says what to install and stops.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v java >/dev/null 2>&1 || [ -x /usr/bin/java ] || need+=(openjdk-17-jre-headless)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "Missing system packages: ${need[*]}. Install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

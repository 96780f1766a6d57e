#!/usr/bin/env bash
# Create the virtual environment and install the sandbox with its test tools, showing progress as it goes.
#
#   bash scripts/install.sh [PYTHON] [VENV]      (what `make venv`, `make demo` and `make test` run first)
#
# pip is silent for minutes while it resolves and installs about 200 packages, so this prints one status line
# (on a terminal, updated in place every second; in a log, a line every 15 s): the phase, the packages pip has
# collected so far, and during the install how many of them are in place (their .dist-info folders), with the
# elapsed time. pip's full output goes to VENV/install.log; if pip fails, its last lines are shown.
set -euo pipefail

PYTHON=${1:-python3}
VENV=${2:-.venv}
LOG="$VENV/install.log"
START=$(date +%s)

elapsed() { echo $(( $(date +%s) - START )); }

echo "[install 1/3] virtual environment $VENV ($("$PYTHON" --version 2>&1))"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"

echo "[install 2/3] pip itself"
"$VENV/bin/python" -m pip install --quiet --upgrade pip

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
count_installed() { find "$SITE" -maxdepth 1 -name '*.dist-info' 2>/dev/null | wc -l; }
BEFORE=$(count_installed)

echo "[install 3/3] the sandbox and its ~155 dependencies: 2-4 minutes from pip's cache on an idle machine (pip's output: $LOG)"
"$VENV/bin/python" -m pip install --progress-bar off -e '.[dev]' > "$LOG" 2>&1 &
PIP=$!
trap 'kill "$PIP" 2>/dev/null || true' INT TERM

status() {
  local collected total done_
  collected=$(grep -cE '^(Collecting|Requirement already satisfied)' "$LOG" || true)
  if grep -q '^Installing collected packages' "$LOG"; then
    total=$(grep -m1 '^Installing collected packages' "$LOG" | tr ',' '\n' | wc -l)
    done_=$(( $(count_installed) - BEFORE ))
    (( done_ < 0 )) && done_=0
    (( done_ > total )) && done_=$total
    printf '  %4ss  installing: %d of %d packages in place' "$(elapsed)" "$done_" "$total"
  elif (( collected > 0 )); then
    printf '  %4ss  resolving: %d packages collected' "$(elapsed)" "$collected"
  elif grep -q '^Obtaining' "$LOG"; then
    printf '  %4ss  preparing the editable build of the sandbox itself' "$(elapsed)"
  else
    printf '  %4ss  starting pip' "$(elapsed)"
  fi
}

LAST=0
while kill -0 "$PIP" 2>/dev/null; do
  sleep 1
  if [ -t 1 ]; then
    printf '\r%s\033[K' "$(status)"
  elif (( $(elapsed) - LAST >= 15 )); then
    LAST=$(elapsed)
    echo "$(status)"
  fi
done
[ -t 1 ] && printf '\r\033[K'

if ! wait "$PIP"; then
  echo "pip failed after $(elapsed) s; the last lines of $LOG:" >&2
  tail -n 25 "$LOG" >&2
  exit 1
fi
INSTALLED=$(grep -m1 '^Successfully installed' "$LOG" | wc -w || true)
echo "  done in $(elapsed) s: $(( INSTALLED > 2 ? INSTALLED - 2 : 0 )) packages installed or updated (log: $LOG)"

#!/usr/bin/env bash
# tests/browser/run.sh — the browser suite (`make test-browser`, and the last step of `make test`):
#   1. npm ci (playwright-core only; no browser is downloaded: the system Chromium is used),
#   2. unit tests of web/pollgate.js's decisions (node --test, fake fetch and clock),
#   3. the demo page in /usr/bin/chromium against a real PostgreSQL + gateway + static server
#      (harness.py starts and stops them), screenshots into build/browser/.
# The gateway is $POLLGATE_BIN, default ./pollgate. Extra arguments go to the end-to-end node --test,
# e.g. tests/browser/run.sh --test-name-pattern='hidden'.
set -euo pipefail
cd "$(dirname "$0")"

command -v node >/dev/null || { echo "run.sh: node not found (scripts/deps.sh installs nodejs and npm)" >&2; exit 1; }
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "run.sh: $CHROMIUM not found (scripts/deps.sh installs chromium)" >&2; exit 1; }
export CHROMIUM

# npm ci on the first run and whenever package-lock.json changed since.
if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch node_modules/.installed
fi

echo "== browser: unit tests of web/pollgate.js"
node --test unit/

echo "== browser: end to end in $("$CHROMIUM" --version 2>/dev/null | head -n 1)"
exec /usr/bin/python3 harness.py -- node --test --test-concurrency=1 "$@" e2e/

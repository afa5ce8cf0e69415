#!/usr/bin/env bash
# scripts/test-integration.sh — the integration suite: pytest against a throwaway PostgreSQL cluster and
# the real binary ($POLLGATE_BIN, default ./pollgate; `make test` points it at the sanitizer build).
# Extra arguments go to pytest, e.g. scripts/test-integration.sh -k review_pack -x, or a test file/node id.
set -euo pipefail
cd "$(dirname "$0")/.."
export POLLGATE_BIN=${POLLGATE_BIN:-$PWD/pollgate}
export PYTHONDONTWRITEBYTECODE=1
# Debian's python3 with python3-pytest and python3-psycopg2, whatever python3 is first on PATH.
# Given a test path or node id (tests/integration/test_x.py::test_y), run just that.
where=(tests/integration)
for a in "$@"; do
	case $a in
	-*) ;;
	*) if [ -e "${a%%::*}" ]; then where=(); fi ;;
	esac
done
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfE "${where[@]}" "$@"

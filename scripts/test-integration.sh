#!/usr/bin/env bash
# scripts/test-integration.sh — the integration suite: pytest against a throwaway PostgreSQL cluster and
# the real binary ($POLLGATE_BIN, default ./pollgate; `make test` points it at the sanitizer build).
# Extra arguments go to pytest, e.g. scripts/test-integration.sh -k review_pack -x, or a test file/node id.
#
# Hint sources: the suite's gateways use hint_source = $POLLGATE_HINT_SOURCE (notify when unset). A whole
# run (no test path given, POLLGATE_HINT_SOURCE unset) then runs the hint-dependent files once more with
# POLLGATE_HINT_SOURCE=logical (logical decoding instead of NOTIFY; their LISTEN-specific tests are skipped
# there, test_logical.py has the counterparts). POLLGATE_HINT_SOURCE=logical scripts/test-integration.sh
# tests/integration/test_longpoll.py runs one file that way by hand.
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
if [ ${#where[@]} -eq 0 ] || [ -n "${POLLGATE_HINT_SOURCE:-}" ]; then
	exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfE "${where[@]}" "$@"
fi
hint_files=(tests/integration/test_longpoll.py tests/integration/test_jwt.py tests/integration/test_security.py
	tests/integration/test_denials.py tests/integration/test_security_registry.py)
rc=0
/usr/bin/python3 -m pytest -q -p no:cacheprovider -rfE "${where[@]}" "$@" || rc=$?
echo "== hint-dependent tests again with POLLGATE_HINT_SOURCE=logical: ${hint_files[*]}"
rc2=0
POLLGATE_HINT_SOURCE=logical /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfE "${hint_files[@]}" "$@" || rc2=$?
[ $rc2 -eq 5 ] && rc2=0 # a -k that selects none of them
[ $rc -ne 0 ] || rc=$rc2
exit $rc

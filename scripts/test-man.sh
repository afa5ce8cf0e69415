#!/usr/bin/env bash
# scripts/test-man.sh — the man pages against the key table (`make test-man`).
#
#   scripts/test-man.sh build/release/conf-reference.tsv
#
# The reference (gateway/config.c's table, printed by build/*/conf-reference, which refuses a key with no
# description) must name exactly the keys `./pollgate --print-config` prints; build/man/pollgate.conf.5 must
# have one `.It Cm KEY` entry for each and no other; both pages must be clean under `mandoc -T lint`
# (its style level included; only "referenced manual not found" is let through, since pollgate(8) and
# pollgate.conf(5) refer to each other before either is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:?usage: scripts/test-man.sh REFERENCE.tsv}
BIN=${POLLGATE_BIN:-./pollgate}
fail=0
bad() { echo "test-man: FAIL: $*" >&2; fail=1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cut -f1 "$ref" | sort >"$tmp/ref"
"$BIN" --print-config -c conf/pollgate.conf | sed -n 's/^\([a-z0-9_]*\) = .*/\1/p' | sort >"$tmp/table"
sed -n '/^\.Sh KEYS/,/^\.Sh /s/^\.It Cm \([^ ]*\) .*/\1/p' build/man/pollgate.conf.5 | sort >"$tmp/man"

[ -s "$tmp/table" ] || bad "--print-config printed no keys"
diff -u "$tmp/table" "$tmp/ref" >"$tmp/d1" || bad "the reference and --print-config disagree (- table, + reference):
$(cat "$tmp/d1")"
diff -u "$tmp/ref" "$tmp/man" >"$tmp/d2" || bad "pollgate.conf(5) KEYS and the reference disagree (- reference, + man):
$(cat "$tmp/d2")"
dups=$(uniq -d "$tmp/man")
[ -z "$dups" ] || bad "documented twice: $dups"
awk -F '\t' 'NF != 7 || $7 == "" { print FILENAME ":" NR ": " $1; n++ } END { exit n > 0 }' "$ref" ||
	bad "keys without a description in $ref"

for page in build/man/pollgate.8 build/man/pollgate.conf.5; do
	lint=$(mandoc -T lint "$page" 2>&1 | grep -v -e 'referenced manual not found' -e 'mandoc.db' || true)
	[ -z "$lint" ] || bad "mandoc -T lint $page:
$lint"
	mandoc -T utf8 "$page" >/dev/null || bad "mandoc cannot render $page"
	if grep -n '@[A-Z]*@' "$page"; then bad "$page has an unfilled placeholder"; fi
done

[ $fail -eq 0 ] && echo "test-man: ok ($(wc -l <"$tmp/ref") keys documented, both pages lint clean)"
exit $fail

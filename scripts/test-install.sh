#!/usr/bin/env bash
# scripts/test-install.sh — `make install` / `make uninstall` into scratch trees (`make test-install`).
#
# 1. DESTDIR staging as a package would (PREFIX=/usr sysconfdir=/etc): every file lands where pollgate(8)
#    says, the installed unit's ExecStart/ExecStartPre binary and config exist in the tree, the installed
#    config passes --check-config, the man pages name the /usr paths. A second install keeps an edited
#    config; uninstall removes everything else and keeps that config (and removes an unedited one).
# 2. An install with no DESTDIR under a scratch PREFIX and sysconfdir: the binary, run without -c, reads
#    the config under that sysconfdir (the path compiled in from sysconfdir).
# At the end ./pollgate is rebuilt with the default paths, so the checkout's binary is as before.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
bad() { echo "test-install: FAIL: $*" >&2; fail=1; }
tmp=$(mktemp -d)
cleanup() { rm -rf "$tmp"; make -s --no-print-directory pollgate man build/pollgate.service >/dev/null; }
trap cleanup EXIT
M=(make -s --no-print-directory)

# -- 1. staged, as a package build does it
D=$tmp/stage
"${M[@]}" install DESTDIR="$D" PREFIX=/usr sysconfdir=/etc >"$tmp/install.log"
for f in usr/sbin/pollgate etc/pollgate/pollgate.conf \
	usr/share/pollgate/schema.sql usr/share/pollgate/grant.sql usr/share/pollgate/demo.sql \
	usr/share/pollgate/web/pollgate.js usr/share/pollgate/web/pollgate.d.ts usr/share/pollgate/web/package.json \
	usr/share/man/man8/pollgate.8 usr/share/man/man5/pollgate.conf.5 \
	usr/share/doc/pollgate/README.md usr/share/doc/pollgate/docs/http-api.md usr/share/doc/pollgate/docs/README.md \
	usr/share/doc/pollgate/examples/nginx.conf \
	usr/lib/systemd/system/pollgate.service; do
	[ -f "$D/$f" ] || bad "not installed: /$f"
done
for m in db/migrations/*.sql; do
	[ -f "$D/usr/share/pollgate/migrations/$(basename "$m")" ] || bad "migration not installed: $m"
done
[ -x "$D/usr/sbin/pollgate" ] || bad "/usr/sbin/pollgate is not executable"
mode=$(stat -c %a "$D/etc/pollgate/pollgate.conf")
[ "$mode" = 640 ] || bad "pollgate.conf has mode $mode, not 640 (it may hold a password)"
unit=$D/usr/lib/systemd/system/pollgate.service
grep -q '^ExecStart=/usr/sbin/pollgate -c /etc/pollgate/pollgate.conf$' "$unit" || bad "ExecStart does not name /usr/sbin/pollgate and /etc/pollgate/pollgate.conf"
for path in $(sed -n 's/^Exec[A-Za-z]*=\(\/[^ ]*pollgate\)\( .*\)\{0,1\}$/\1/p' "$unit") \
	$(grep -o -- '-c [^ ]*' "$unit" | cut -c4- | sort -u); do
	[ -e "$D$path" ] || bad "the unit names $path, which the install did not write"
done
if grep -n '/usr/local' "$unit" "$D/usr/share/man/man8/pollgate.8" "$D/usr/share/man/man5/pollgate.conf.5"; then
	bad "an installed file still names /usr/local (PREFIX=/usr)"
fi
grep -q '/usr/share/pollgate/schema.sql' "$D/usr/share/man/man8/pollgate.8" || bad "pollgate(8) does not name /usr/share/pollgate/schema.sql"
"$D/usr/sbin/pollgate" --version | grep -qx "pollgate $(sed -n 's/^VERSION *:= *//p' Makefile)" || bad "--version"
"$D/usr/sbin/pollgate" --check-config -c "$D/etc/pollgate/pollgate.conf" >/dev/null || bad "the installed config does not pass --check-config"

# an edited config survives a second install and the uninstall; nothing else does
sed -i 's/^max_wait = .*/max_wait = 50s/' "$D/etc/pollgate/pollgate.conf"
"${M[@]}" install DESTDIR="$D" PREFIX=/usr sysconfdir=/etc >"$tmp/install2.log"
grep -q '^max_wait = 50s$' "$D/etc/pollgate/pollgate.conf" || bad "a second install overwrote the edited config"
"${M[@]}" uninstall DESTDIR="$D" PREFIX=/usr sysconfdir=/etc >"$tmp/uninstall.log"
left=$(cd "$D" && find . -type f | sort)
[ "$left" = "./etc/pollgate/pollgate.conf" ] || bad "after uninstall, expected only the edited config; left: $left"
# an unedited config goes with the rest
"${M[@]}" install DESTDIR="$tmp/stage2" PREFIX=/usr sysconfdir=/etc >/dev/null
"${M[@]}" uninstall DESTDIR="$tmp/stage2" PREFIX=/usr sysconfdir=/etc >/dev/null
left=$(cd "$tmp/stage2" && find . -type f | sort)
[ -z "$left" ] || bad "after uninstall of an unedited install, left: $left"

# -- 2. no DESTDIR: the default config path is the one compiled in from sysconfdir
P=$tmp/prefix
"${M[@]}" install PREFIX="$P" sysconfdir="$P/etc" systemdunitdir="$P/lib/systemd/system" >"$tmp/install3.log"
out=$("$P/sbin/pollgate" --check-config 2>&1) || bad "--check-config without -c: $out"
[ "$out" = "$P/etc/pollgate/pollgate.conf: configuration ok" ] || bad "--check-config without -c read something else: $out"
sed -i 's/^max_wait = .*/max_wait = 31s/' "$P/etc/pollgate/pollgate.conf"
"$P/sbin/pollgate" --print-config | grep -qx 'max_wait = 31s' || bad "pollgate without -c did not read $P/etc/pollgate/pollgate.conf"
grep -q "^ExecStart=$P/sbin/pollgate -c $P/etc/pollgate/pollgate.conf$" "$P/lib/systemd/system/pollgate.service" ||
	bad "the unit does not name the PREFIX and sysconfdir paths"

[ $fail -eq 0 ] && echo "test-install: ok (staged /usr install, edited config kept, uninstall clean, compiled-in sysconfdir)"
exit $fail

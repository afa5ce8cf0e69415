#!/usr/bin/env bash
# scripts/test-package.sh — the Debian package, end to end (`make test-package`; .ci/run runs it).
#
# Copies the checkout (tracked and new files, nothing ignored) to a scratch directory and builds there
# with `dpkg-buildpackage -us -uc -b`, so the worktree stays clean; runs lintian on the result (any E:
# fails; W: and I: are printed); installs the .deb with apt-get; checks `pollgate --version`,
# `pollgate --check-config` on the installed /etc/pollgate/pollgate.conf (and without -c, which reads it),
# the pollgate system user, the unit, the conffile, the SQL files and the man pages; then purges it and
# checks nothing of it is left. Needs root (it installs a package); refuses to run when pollgate is
# already installed, so it never removes an install it did not make.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf 'test-package: %s\n' "$*"; }
die() { printf 'test-package: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "test-package: needs root (it installs and purges the package)" >&2; exit 2; }
scripts/deps.sh package
if [ "$(dpkg-query -W -f='${db:Status-Status}' pollgate 2>/dev/null || true)" = installed ]; then
	die "a pollgate package is already installed here; this test installs and purges its own, so remove that one first"
fi

VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)
tmp=$(mktemp -d /tmp/pollgate-package.XXXXXX)
installed=0
cleanup() {
	if [ $installed -eq 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 pollgate >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

t0=$(date +%s)
src=$tmp/pollgate-$VERSION
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
	[ -e "$f" ] && printf '%s\0' "$f"
done | tar --null -T - -cf - | tar -xf - -C "$src"

log "building in $src"
(cd "$src" && dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1) || { tail -n 40 "$tmp/build.log" >&2; die "dpkg-buildpackage failed (log above)"; }
deb=$(ls "$tmp"/pollgate_"$VERSION"_*.deb)
changes=$(ls "$tmp"/pollgate_"$VERSION"_*.changes)
log "built $(basename "$deb") in $(( $(date +%s) - t0 ))s"

lintian --fail-on error --tag-display-limit 0 --display-info "$changes" >"$tmp/lintian.log" 2>&1 || lintian_rc=$?
if [ -s "$tmp/lintian.log" ]; then
	log "lintian:"
	sed 's/^/    /' "$tmp/lintian.log"
fi
if grep -q '^E: ' "$tmp/lintian.log" || [ "${lintian_rc:-0}" -ne 0 ]; then
	die "lintian reports errors"
fi

# What the package holds: the paths pollgate(8) names.
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
for f in /usr/sbin/pollgate /etc/pollgate/pollgate.conf /usr/share/pollgate/schema.sql /usr/share/pollgate/grant.sql \
	/usr/share/pollgate/web/pollgate.js /usr/share/pollgate/web/package.json /lib/systemd/system/pollgate.service \
	/usr/share/man/man8/pollgate.8.gz /usr/share/man/man5/pollgate.conf.5.gz; do
	grep -qx "$f" <<<"$contents" || die "the package lacks $f"
done
for m in db/migrations/*.sql; do
	grep -qx "/usr/share/pollgate/migrations/$(basename "$m")" <<<"$contents" || die "the package lacks migration $m"
done
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/pollgate/pollgate.conf "$tmp/control/conffiles" || die "/etc/pollgate/pollgate.conf is not a conffile"

log "installing"
installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "$deb" >"$tmp/install.log" 2>&1 ||
	{ tail -n 30 "$tmp/install.log" >&2; die "apt-get install failed"; }

[ "$(dpkg-query -W -f='${Version}' pollgate)" = "$VERSION" ] || die "installed version is not $VERSION"
out=$(/usr/sbin/pollgate --version)
[ "$out" = "pollgate $VERSION" ] || die "pollgate --version printed '$out'"
out=$(/usr/sbin/pollgate --check-config -c /etc/pollgate/pollgate.conf) || die "--check-config on the installed config: $out"
out=$(/usr/sbin/pollgate --check-config) || die "--check-config without -c: $out"
[ "$out" = "/etc/pollgate/pollgate.conf: configuration ok" ] || die "--check-config without -c checked something else: $out"
getent passwd pollgate >/dev/null || die "no pollgate user"
[ "$(getent passwd pollgate | cut -d: -f7)" = /usr/sbin/nologin ] || die "the pollgate user has a login shell"
getent group pollgate >/dev/null || die "no pollgate group"
[ "$(stat -c '%a %U %G' /etc/pollgate/pollgate.conf)" = "640 root pollgate" ] ||
	die "/etc/pollgate/pollgate.conf is $(stat -c '%a %U %G' /etc/pollgate/pollgate.conf), not 640 root pollgate"
[ "$(stat -c '%a %U %G' /etc/pollgate)" = "750 root pollgate" ] || die "/etc/pollgate is $(stat -c '%a %U %G' /etc/pollgate)"
runuser -u pollgate -- /usr/sbin/pollgate --check-config >/dev/null || die "the pollgate user cannot read its config"
unit=/lib/systemd/system/pollgate.service
[ -f "$unit" ] || die "no unit at $unit"
grep -qx 'ExecStart=/usr/sbin/pollgate -c /etc/pollgate/pollgate.conf' "$unit" || die "the unit's ExecStart does not name the installed paths"
grep -qx 'User=pollgate' "$unit" || die "the unit does not run as pollgate"
[ -L /etc/systemd/system/multi-user.target.wants/pollgate.service ] || die "the unit is not enabled (dh_installsystemd)"
if command -v systemd-analyze >/dev/null 2>&1; then
	systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1 || { cat "$tmp/verify.log" >&2; die "systemd-analyze verify $unit"; }
fi
man -w pollgate >/dev/null 2>&1 || [ -f /usr/share/man/man8/pollgate.8.gz ] || die "no pollgate(8)"

log "purging"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 pollgate >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; die "apt-get purge failed"; }
installed=0
status=$(dpkg-query -W -f='${db:Status-Status}' pollgate 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = not-installed ] || die "after purge dpkg says: $status"
for p in /usr/sbin/pollgate /etc/pollgate /usr/share/pollgate /lib/systemd/system/pollgate.service \
	/etc/systemd/system/multi-user.target.wants/pollgate.service /usr/share/doc/pollgate; do
	[ ! -e "$p" ] || die "$p is still there after purge"
done

log "ok: built, lintian without errors, installed, ran, purged in $(( $(date +%s) - t0 ))s"

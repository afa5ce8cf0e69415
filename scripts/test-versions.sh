#!/usr/bin/env bash
# scripts/test-versions.sh — one version everywhere (`make test-versions`): the Makefile's VERSION (what
# `pollgate --version` prints), the newest debian/changelog entry (the package's version; native, so no
# Debian revision) and web/package.json (the npm package of the browser client).
set -euo pipefail
cd "$(dirname "$0")/.."
make_v=${1:-$(sed -n 's/^VERSION *:= *//p' Makefile)}
deb_v=$(sed -n '1s/^pollgate (\([^)]*\)).*/\1/p' debian/changelog)
npm_v=$(sed -n 's/^  "version": "\([^"]*\)",\{0,1\}$/\1/p' web/package.json)
echo "versions: Makefile ${make_v:-?}, debian/changelog ${deb_v:-?}, web/package.json ${npm_v:-?}"
if [ -z "$make_v" ] || [ "$make_v" != "$deb_v" ] || [ "$make_v" != "$npm_v" ]; then
	echo "test-versions: FAIL: the versions differ; bump all three together (and add a debian/changelog entry)" >&2
	exit 1
fi
if [ -x ./pollgate ] && [ "$(./pollgate --version)" != "pollgate $make_v" ]; then
	echo "test-versions: FAIL: ./pollgate --version prints '$(./pollgate --version)' (rebuild?)" >&2
	exit 1
fi
echo "test-versions: ok"

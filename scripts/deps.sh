#!/usr/bin/env bash
# scripts/deps.sh — make sure the Debian packages pollgate builds, runs and tests with are installed.
#
#   scripts/deps.sh [GROUP...]     GROUP: build, run, test, package, bench; none = build run test (what make test needs)
#
#   build    the compiler and the libraries: enough for `make` and `make install`
#   run      build + PostgreSQL 15, python3-psycopg2 (the simulator), curl: enough for `make run`
#   test     run + the suites' tools: clang (fuzzing), cmocka, pytest, pgbouncer, nginx, HAProxy, Chromium,
#            node (the browser suite), mandoc (the man page lint)
#   package  build + debhelper, dpkg-dev, fakeroot, lintian, adduser: `make test-package`
#   bench    run + nginx and its nchan module (libnginx-mod-nchan): `make bench-peers`
#
# Quiet when everything is there ("deps: all present"). As root it installs what is missing with apt-get;
# otherwise it prints the exact command to run and exits 1. postgresql-15 may create and start a default
# system cluster on 5432 when installed: harmless, pollgate's own clusters use their own ports. Likewise
# nginx (default site on port 80) and haproxy: tests/integration/test_proxy.py runs its own masters from
# conf/nginx.conf and conf/haproxy.cfg on free ports. prometheus is installed for promtool only; its
# service may start on :9090 and is not used.
set -euo pipefail

BUILD=(build-essential pkg-config libevent-dev libpq-dev libjansson-dev libssl-dev)
RUN=(postgresql-15 python3 python3-psycopg2 curl procps)
TEST=(
	clang libclang-rt-14-dev
	libcmocka-dev
	pgbouncer
	python3-pytest
	nginx haproxy
	chromium
	mandoc
	php-cli
	prometheus # promtool: tests/integration/test_metrics.py checks /metrics and conf/prometheus/ with it
)
command -v node >/dev/null 2>&1 || TEST+=(nodejs npm) # the browser suite's driver (tests/browser); a node already there is kept
PACKAGE=(debhelper dpkg-dev fakeroot lintian adduser)
BENCH=(nginx libnginx-mod-nchan)

[ $# -gt 0 ] || set -- build run test
PACKAGES=()
for g in "$@"; do
	case $g in
	build) PACKAGES+=("${BUILD[@]}") ;;
	run) PACKAGES+=("${BUILD[@]}" "${RUN[@]}") ;;
	test) PACKAGES+=("${BUILD[@]}" "${RUN[@]}" "${TEST[@]}") ;;
	package) PACKAGES+=("${BUILD[@]}" "${PACKAGE[@]}") ;;
	bench) PACKAGES+=("${BUILD[@]}" "${RUN[@]}" "${BENCH[@]}") ;;
	*) echo "deps: unknown group '$g' (build, run, test, package, bench)" >&2; exit 2 ;;
	esac
done
mapfile -t PACKAGES < <(printf '%s\n' "${PACKAGES[@]}" | awk '!seen[$0]++')

missing=()
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$status" != "installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all present"
	exit 0
fi

echo "deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: not root; install them with:" >&2
	echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"

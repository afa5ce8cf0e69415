#!/usr/bin/env bash
# scripts/deps.sh — make sure the Debian packages pollgate builds, runs and tests with are installed.
#
# Quiet when everything is there ("deps: all present"). As root it installs what is missing with apt-get;
# otherwise it prints the exact command to run and exits 1. postgresql-15 may create and start a default
# system cluster on 5432 when installed: harmless, pollgate's own clusters use their own ports. Likewise
# nginx (default site on port 80) and haproxy: tests/integration/test_proxy.py runs its own masters from
# conf/nginx.conf and conf/haproxy.cfg on free ports. prometheus is installed for promtool only; its
# service may start on :9090 and is not used.
set -euo pipefail

PACKAGES=(
	build-essential pkg-config
	clang libclang-rt-14-dev
	libevent-dev libpq-dev libjansson-dev libssl-dev libcmocka-dev
	postgresql-15 pgbouncer
	python3 python3-pytest python3-psycopg2
	curl procps
	nginx haproxy
	chromium
	prometheus # promtool: tests/integration/test_metrics.py checks /metrics and conf/prometheus/ with it
)
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs npm) # the browser suite's driver (tests/browser); a node already there is kept

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

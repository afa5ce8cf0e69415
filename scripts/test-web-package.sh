#!/usr/bin/env bash
# scripts/test-web-package.sh — web/ as the npm package @pollgate/client (`make test-web`).
#
# `npm pack` of web/ must hold exactly package.json, pollgate.js, pollgate.d.ts and README.md; the tarball,
# installed offline into a scratch project (as a Vite or Laravel app would take it), and web/ itself
# installed by path (`npm install /path/to/pollgate/web`), must both let node import `watch` by the
# package name, with the `types` entry pointing at pollgate.d.ts. Nothing is fetched from a registry.
set -euo pipefail
cd "$(dirname "$0")/.."
WEB=$PWD/web
fail=0
bad() { echo "test-web-package: FAIL: $*" >&2; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export npm_config_cache=$tmp/npm-cache npm_config_update_notifier=false
NPM=(npm --no-audit --no-fund --offline --loglevel=error)

name=$(node -p "require('$WEB/package.json').name")
version=$(node -p "require('$WEB/package.json').version")

(cd "$tmp" && "${NPM[@]}" pack "$WEB" >"$tmp/pack.out")
tarball=$tmp/$(tail -n 1 "$tmp/pack.out")
[ -f "$tarball" ] || { bad "npm pack wrote no tarball ($(cat "$tmp/pack.out"))"; exit 1; }
files=$(tar -tzf "$tarball" | sort | tr '\n' ' ')
[ "$files" = "package/README.md package/package.json package/pollgate.d.ts package/pollgate.js " ] ||
	bad "the tarball holds: $files"

# The import a bundler's module resolution makes, run by node: by name, through "exports".
check_import() { # DIR WHAT
	(cd "$1" && node --input-type=module -e "
		import { watch, PollgateError } from '$name';
		import { createRequire } from 'node:module';
		import { readFileSync } from 'node:fs';
		import { dirname, join } from 'node:path';
		if (typeof watch !== 'function' || typeof PollgateError !== 'function') throw new Error('watch/PollgateError not exported');
		const pkgPath = createRequire(join(process.cwd(), 'x.js')).resolve('$name/package.json');
		const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
		if (pkg.version !== '$version') throw new Error('installed version ' + pkg.version);
		const types = readFileSync(join(dirname(pkgPath), pkg.types), 'utf8');
		if (!/export function watch/.test(types)) throw new Error('types do not declare watch');
	") || bad "$2: importing watch from $name failed"
}

mkdir -p "$tmp/app-tgz" "$tmp/app-dir"
for d in app-tgz app-dir; do
	printf '{"name":"scratch-%s","private":true,"type":"module"}\n' "$d" >"$tmp/$d/package.json"
done
(cd "$tmp/app-tgz" && "${NPM[@]}" install "$tarball" >/dev/null) || bad "npm install of the tarball failed"
check_import "$tmp/app-tgz" "from the npm pack tarball"
(cd "$tmp/app-dir" && "${NPM[@]}" install "$WEB" >/dev/null) || bad "npm install $WEB failed"
check_import "$tmp/app-dir" "from npm install web/"
[ -z "$(git status --porcelain -- web)" ] || bad "the test left files in web/: $(git status --porcelain -- web)"

[ $fail -eq 0 ] && echo "test-web-package: ok ($name $version: npm pack, installed by tarball and by path, watch imported)"
exit $fail

#!/usr/bin/env bash
# scripts/fuzz.sh — run the libFuzzer targets built by `make fuzz-build` (build/fuzz/fuzz_<target>).
#
#   scripts/fuzz.sh run TARGET...       fuzz each target for $FUZZ_TIME seconds (default 60)
#   scripts/fuzz.sh regress TARGET...   replay each target's committed corpus once (no fuzzing)
#
# `run` copies tests/fuzz/corpus/<target>/ into the working corpus build/fuzz/corpus-<target>/ (kept
# between runs, so later runs start where earlier ones stopped) and fuzzes that: nothing is ever written
# into the repository. Crash, leak, timeout and out-of-memory inputs land in build/fuzz/artifacts/<target>/.
# The full libFuzzer output goes to build/fuzz/<target>.log; one summary line per target is printed, and
# the log's tail when a target fails. Exit status: 0 only when every target finished clean.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
shift || true
if [ "$mode" != run ] && [ "$mode" != regress ] || [ $# -eq 0 ]; then
	echo "usage: scripts/fuzz.sh run|regress TARGET..." >&2
	exit 2
fi

FUZZ_TIME=${FUZZ_TIME:-60}
case "$FUZZ_TIME" in '' | *[!0-9]*)
	echo "fuzz: FUZZ_TIME must be a whole number of seconds, not '$FUZZ_TIME'" >&2
	exit 2
	;;
esac
B=build/fuzz
# Leaks fail the run too; symbolized stacks in reports.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# stat NAME LOG: the value of libFuzzer's final "stat::NAME: value" line.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

fail=0
for t in "$@"; do
	bin=$B/fuzz_$t
	seeds=tests/fuzz/corpus/$t
	log=$B/$t.log
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin is missing (make fuzz-build)" >&2
		fail=1
		continue
	fi
	if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
		echo "fuzz: $seeds is empty" >&2
		fail=1
		continue
	fi
	artifacts=$B/artifacts/$t
	mkdir -p "$artifacts"
	dict=()
	[ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
	start=$(date +%s.%N)
	rc=0
	if [ "$mode" = run ]; then
		work=$B/corpus-$t
		mkdir -p "$work"
		cp -p "$seeds"/* "$work"/
		"$bin" "${dict[@]}" -max_total_time="$FUZZ_TIME" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$artifacts/" "$work" >"$log" 2>&1 || rc=$?
		size=$(find "$work" -type f | wc -l)
	else
		# Files, not the directory: libFuzzer runs each once and writes nothing.
		"$bin" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/" "$seeds"/* >"$log" 2>&1 || rc=$?
		size=$(find "$seeds" -type f | wc -l)
	fi
	end=$(date +%s.%N)
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
	if [ "$mode" = run ]; then
		execs=$(stat number_of_executed_units "$log")
		rate=$(stat average_exec_per_sec "$log")
		cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
		echo "fuzz $t: ${execs:-?} execs in ${secs} s (${rate:-?}/s), corpus $size files, ${cov:-cov: ?}, exit $rc"
	else
		execs=$(grep -c '^Executed ' "$log" || true)
		echo "fuzz-regress $t: $execs of $size corpus inputs replayed in ${secs} s, exit $rc"
	fi
	if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant failed' "$log"; then
		echo "fuzz $t: FAILED (full log: $log; inputs: $artifacts/)" >&2
		tail -n 60 "$log" >&2
		fail=1
	fi
done
exit $fail

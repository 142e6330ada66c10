#!/bin/bash
# 'make check': the project's tests, in order of cost: the harness'
# self-tests; then for each base (6.1, 6.12) patch hygiene, bisectability
# and sparse (6.12 only), and the full run (build base + series, boot, run
# every guest test); then, for 6.12, the proof matrix (base, series and
# every mutant against configs/6.12/matrix.txt). Each part's counts are
# added up; the last line is the total "N passed, N failed, N skipped".
#
# What does not fit in CI's 90 minutes on a cold 2-core machine runs with
# CHECK_FULL=1 ('make check-full'): for 6.1, whose series changes least,
# bisectability and sparse and the proof matrix; for both bases the
# regression programs on the debug kernel (KASAN, lockdep, DEBUG_VM).
# README.md has the times.
. "$(dirname "$0")/lib.sh"
CHECK_FULL=${CHECK_FULL:-0}

total_p=0 total_f=0 total_s=0
# part NAME CMD...: run one part, show its output, add up its last line.
part() {
	local name=$1 log line p f s start
	shift
	log=$(mktemp)
	start=$(date +%s)
	echo "=== $name"
	# A failing part is counted below, not the end of the check.
	"$@" 2>&1 | tee "$log" || true
	line=$(tail -1 "$log")
	rm -f "$log"
	if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
		p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[4]:-0}
	else
		echo "=== $name ended without a count: counted as one failure"
		p=0 f=1 s=0
	fi
	echo "=== $name: $((($(date +%s) - start) / 60)) min $((($(date +%s) - start) % 60)) s"
	total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
}

# The self-tests run qemu.sh and initramfs.sh, which need the packages.
part "deps" bash -c "'$REPO/scripts/deps.sh' && echo '1 passed, 0 failed'"
part "harness self-tests" "$REPO/scripts/test-harness.sh"
for b in 6.1 6.12; do
	part "$b: base" env BASE=$b bash -c "'$REPO/scripts/base.sh' && echo '1 passed, 0 failed'"
	part "$b: patch hygiene" env BASE=$b "$REPO/scripts/check-patches.sh"
	if [ "$b" = 6.12 ] || [ "$CHECK_FULL" = 1 ]; then
		part "$b: bisectability and sparse" env BASE=$b "$REPO/scripts/check-builds.sh"
	fi
	part "$b: guest run: base + series" make -s -C "$REPO" run BASE=$b
done
debug_run() {
	part "$1: debug kernel: the regression programs" \
		make -s -C "$REPO" run BASE="$1" DEBUG=1 TESTS='uffd-wp-*'
}
part "6.12: proof matrix: base, series, mutants" env BASE=6.12 "$REPO/scripts/matrix.sh"
if [ "$CHECK_FULL" = 1 ]; then
	part "6.1: proof matrix: base, series, mutants" env BASE=6.1 "$REPO/scripts/matrix.sh"
	debug_run 6.12
	debug_run 6.1
fi
echo "=== total"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" = 0 ]

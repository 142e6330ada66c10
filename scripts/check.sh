#!/bin/bash
# 'make check': the project's tests, in order of cost: the harness'
# self-tests, patch hygiene, bisectability and sparse, the full run (build
# base + series, boot, run every guest test), the regression programs on
# the debug kernel (KASAN, lockdep, DEBUG_VM), and the proof matrix (base,
# series and every mutant against configs/matrix.txt). Each part's counts
# are added up; the last line is the total "N passed, N failed, N skipped".
. "$(dirname "$0")/lib.sh"

total_p=0 total_f=0 total_s=0
# part NAME CMD...: run one part, show its output, add up its last line.
part() {
	local name=$1 log line p f s
	shift
	log=$(mktemp)
	echo "=== $name"
	"$@" 2>&1 | tee "$log"
	line=$(tail -1 "$log")
	rm -f "$log"
	if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
		p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[4]:-0}
	else
		echo "=== $name ended without a count: counted as one failure"
		p=0 f=1 s=0
	fi
	total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
}

part "harness self-tests" "$REPO/scripts/test-harness.sh"
part "deps and base" bash -c "'$REPO/scripts/deps.sh' && '$REPO/scripts/base.sh' && echo '2 passed, 0 failed'"
part "patch hygiene" "$REPO/scripts/check-patches.sh"
part "bisectability and sparse" "$REPO/scripts/check-builds.sh"
part "guest run: base + series" make -s -C "$REPO" run
part "debug kernel: the regression programs" make -s -C "$REPO" run DEBUG=1 TESTS='uffd-wp-*'
part "proof matrix: base, series, mutants" "$REPO/scripts/matrix.sh"
echo "=== total"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" = 0 ]

#!/bin/bash
# 'make check': the project's tests: the harness' self-tests; then for
# each base (configs/*/base.env, oldest first) patch hygiene and the full
# run (build base + series, boot, run every guest test), and for the base
# whose BASE_CHECK is "full" (mainline) also bisectability and sparse and
# the proof matrix (base, series and every mutant against
# configs/BASE/matrix.txt). Each part's counts are added up; the last line
# is the total "N passed, N failed, N skipped".
#
# What does not fit in CI's 90 minutes on a cold 2-core machine runs with
# CHECK_FULL=1 ('make check-full'): bisectability, sparse and the proof
# matrix of every base, and the regression programs on each base's debug
# kernel (KASAN, lockdep, DEBUG_VM). README.md has the times.
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

# The bases, oldest first, each a folder configs/BASE/ with its pin. What
# each gets in 'make check' is its BASE_CHECK (base.env): "full" (the
# series upstream reviews: hygiene, bisectability and sparse, the guest
# run, the proof matrix) or "run" (a backport: hygiene and the guest run;
# the rest with CHECK_FULL=1).
mapfile -t bases < <(cd "$REPO/configs" && ls -d -- */ | tr -d / | sort -V |
	while read -r b; do [ ! -f "$b/base.env" ] || echo "$b"; done)
# base_var BASE NAME: the setting NAME of that base's base.env.
base_var() { (. "$REPO/configs/$1/base.env" && echo "${!2:-}"); }

# The self-tests run qemu.sh and initramfs.sh, which need the packages.
part "deps" bash -c "'$REPO/scripts/deps.sh' && echo '1 passed, 0 failed'"
part "harness self-tests" "$REPO/scripts/test-harness.sh"
for b in "${bases[@]}"; do
	full=$([ "$(base_var "$b" BASE_CHECK)" = full ] || [ "$CHECK_FULL" = 1 ] && echo 1 || echo 0)
	part "$b: base" env BASE="$b" bash -c "'$REPO/scripts/base.sh' && echo '1 passed, 0 failed'"
	part "$b: patch hygiene" env BASE="$b" "$REPO/scripts/check-patches.sh"
	# Bisectability: CHECK_FULL only (about 13 minutes cold per base).
	[ "$CHECK_FULL" = 0 ] ||
		part "$b: bisectability and sparse" env BASE="$b" "$REPO/scripts/check-builds.sh"
	part "$b: guest run: base + series" make -s -C "$REPO" run BASE="$b"
	# The matrix columns CI has time for (BASE_CHECK_MATRIX); all of them
	# with CHECK_FULL=1.
	[ "$full" = 0 ] ||
		part "$b: proof matrix: base, series, mutants" env BASE="$b" \
			MATRIX_KERNELS="$([ "$CHECK_FULL" = 1 ] || base_var "$b" BASE_CHECK_MATRIX)" \
			"$REPO/scripts/matrix.sh"
done
if [ "$CHECK_FULL" = 1 ]; then
	for b in "${bases[@]}"; do
		part "$b: debug kernel: the regression programs" \
			make -s -C "$REPO" run BASE="$b" DEBUG=1 TESTS='uffd-wp-*'
	done
fi
echo "=== total"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" = 0 ]

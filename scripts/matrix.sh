#!/bin/bash
# 'make matrix': the proof that the tests bite. Builds and boots every
# kernel named in the header of configs/matrix.txt -- the base, the series,
# and each mutant (mutants/NAME.patch on top of the series) -- runs the
# tests named by its rows, and compares each verdict with the expected one:
#   pass   the test must pass        fail   the test must fail
#   -      not compared (the test still runs, its verdict is shown)
# Any mismatch fails the run. Prints the matrix, expected/actual, to
# $BUILD_DIR/matrix.txt; the last line counts the compared cells.
#   MATRIX_FILE   the expected table (default configs/matrix.txt)
. "$(dirname "$0")/lib.sh"
. "$REPO/scripts/console.sh"
MATRIX_FILE=${MATRIX_FILE:-$REPO/configs/matrix.txt}
unset EXTRA_PATCH SERIES_UPTO

table=$(grep -v '^[[:space:]]*#' "$MATRIX_FILE" | grep .)
read -r -a kernels <<<"$(echo "$table" | head -1 | cut -d' ' -f2- | xargs)"
mapfile -t tests < <(echo "$table" | tail -n +2 | awk '{ print $1 }')
[ "${#kernels[@]}" -gt 0 ] && [ "${#tests[@]}" -gt 0 ] ||
	die "$MATRIX_FILE: needs a header line (test KERNEL...) and one row per test"

# kernel_env KERNEL: the settings that select it.
kernel_env() {
	case "$1" in
	baseline) echo "MODE=baseline" ;;
	series) echo "MODE=series" ;;
	*)
		[ -f "$REPO/mutants/$1.patch" ] || die "no mutant patch mutants/$1.patch"
		echo "MODE=series EXTRA_PATCH=$REPO/mutants/$1.patch" ;;
	esac
}

# verdict LOG TEST: pass, fail, skip, or "none" when it never reported.
verdict() {
	local line
	line=$(console_tap "$1" | grep -E "^(not )?ok [0-9]+ $2( |$)" | head -1)
	case "$line" in
	"") echo none ;;
	"not ok"*) echo fail ;;
	*"# SKIP"*) echo skip ;;
	*) echo pass ;;
	esac
}

for k in "${kernels[@]}"; do
	kernel_env "$k" >/dev/null
done

declare -A actual times
for k in "${kernels[@]}"; do
	start=$(date +%s)
	log "=== kernel $k: $(kernel_env "$k")"
	for s in series kernel selftests initramfs qemu; do
		# shellcheck disable=SC2046
		env $(kernel_env "$k") TESTS="${tests[*]}" "$REPO/scripts/$s.sh" ||
			[ "$s" = qemu ] || die "kernel $k: stage $s failed"
	done
	out=$(env $(kernel_env "$k") bash -c ". '$REPO/scripts/lib.sh'; echo \$OUT_DIR")
	for t in "${tests[@]}"; do
		actual[$k/$t]=$(verdict "$out/console.log" "$t")
	done
	times[$k]=$(($(date +%s) - start))
done

passed=0 failed=0
{
	echo "== proof matrix: expected/actual per test and kernel ($(config_name) config)"
	printf '%-26s' test
	printf ' %-22s' "${kernels[@]}"
	echo
	while read -r t expect; do
		read -r -a want <<<"$expect"
		printf '%-26s' "$t"
		for i in "${!kernels[@]}"; do
			k=${kernels[$i]} w=${want[$i]:--} a=${actual[${kernels[$i]}/$t]}
			mark=""
			if [ "$w" != - ]; then
				if [ "$w" = "$a" ] || { [ "$w" = pass ] && [ "$a" = skip ]; }; then
					passed=$((passed + 1))
				else
					failed=$((failed + 1))
					mark=" MISMATCH"
				fi
			fi
			printf ' %-22s' "$w/$a$mark"
		done
		echo
	done < <(echo "$table" | tail -n +2)
	printf '%-26s' "time (s)"
	for k in "${kernels[@]}"; do printf ' %-22s' "${times[$k]}"; done
	echo
	echo
	echo "$passed passed, $failed failed"
} | tee "$BUILD_DIR/matrix.txt"
[ "$failed" = 0 ]

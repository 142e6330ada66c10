#!/bin/bash
# 'make matrix': the proof that the tests bite. Builds and boots every
# kernel named in the header of configs/matrix.txt -- the base, the series,
# series@N (its first N patches), and each mutant (mutants/NAME.patch on
# top of the series, or several: A+B) -- runs the tests named by its rows,
# and compares each verdict with the expected one. A row TEST/CASE is the
# verdict of one test case in TEST's kselftest harness output (CASE: its
# name, or the last dot-separated parts of it).
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
mapfile -t rows < <(echo "$table" | tail -n +2 | awk '{ print $1 }')
[ "${#kernels[@]}" -gt 0 ] && [ "${#rows[@]}" -gt 0 ] ||
	die "$MATRIX_FILE: needs a header line (test KERNEL...) and one row per test"
# The tests to run: the rows' TEST parts.
mapfile -t tests < <(printf '%s\n' "${rows[@]%%/*}" | awk '!seen[$0]++')

# verdict LOG ROW: pass, fail, skip, or "none" when it never reported.
verdict() {
	local line
	case "$2" in
	*/*) line=$(tr -d '\r' <"$1" |
		grep -E "^(# )+(not )?ok [0-9]+ ([^ ]*\.)?${2#*/}( |$)" | head -1) ;;
	*) line=$(console_tap "$1" | grep -E "^(not )?ok [0-9]+ $2( |$)" | head -1) ;;
	esac
	case "$line" in
	"") echo none ;;
	*"not ok"*) echo fail ;;
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
	log "=== kernel $k: $(kernel_env "$k" | xargs)"
	boot_kernel "$k" TESTS="${tests[*]}"
	for t in "${rows[@]}"; do
		actual[$k/$t]=$(verdict "$KERNEL_OUT/console.log" "$t")
	done
	times[$k]=$(($(date +%s) - start))
done

# Column widths: the longest row name; each kernel's name, or a cell.
tw=8
for t in "${rows[@]}"; do [ "${#t}" -le "$tw" ] || tw=${#t}; done
kw=()
for k in "${kernels[@]}"; do kw+=("$((${#k} > 18 ? ${#k} : 18))"); done

passed=0 failed=0
{
	echo "== proof matrix: expected/actual per test and kernel ($(config_name) config)"
	printf '%-*s' "$tw" test
	for i in "${!kernels[@]}"; do printf ' %-*s' "${kw[$i]}" "${kernels[$i]}"; done
	echo
	while read -r t expect; do
		read -r -a want <<<"$expect"
		printf '%-*s' "$tw" "$t"
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
			printf ' %-*s' "${kw[$i]}" "$w/$a$mark"
		done
		echo
	done < <(echo "$table" | tail -n +2)
	printf '%-*s' "$tw" "time (s)"
	for i in "${!kernels[@]}"; do printf ' %-*s' "${kw[$i]}" "${times[${kernels[$i]}]}"; done
	echo
	echo
	echo "$passed passed, $failed failed"
} | tee "$BUILD_DIR/matrix.txt"
[ "$failed" = 0 ]

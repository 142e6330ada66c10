#!/bin/bash
# 'make matrix': the proof that the tests bite. Builds and boots every
# kernel named in the header of configs/BASE/matrix.txt -- the base, the
# series, series@N (its first N patches), and each mutant (mutants/BASE/NAME.patch on
# top of the series, or several: A+B) -- runs the tests named by its rows,
# and compares each verdict with the expected one. A row TEST is the
# result of the guest's test TEST (configs/BASE/tests.txt); a row
# TEST/CASE the verdict of case CASE of program TEST (its name, or the
# last dot-separated parts of it), failed if any run of it failed.
#   pass   the test must pass        fail   the test must fail
#   -      not compared (the test still runs, its verdict is shown)
#   .      not run on that kernel
# Any mismatch fails the run. Prints the matrix, expected/actual, to
# $BUILD_DIR/matrix-BASE.txt; the last line counts the compared cells.
# Some mutants open a race window that a test hits in most runs, not all:
# a kernel whose "fail" cells passed boots again, with only those tests,
# up to MATRIX_BOOTS times in all; such a cell is caught if any boot fails
# it (shown as fail@N, N the boot). "pass" cells get one boot: the series
# must pass every time.
#   MATRIX_FILE   the expected table (default configs/BASE/matrix.txt)
#   MATRIX_BOOTS  boots per kernel while "fail" cells pass (default 4)
#   MATRIX_REPORT_ONLY=1  boot nothing: the verdicts of the consoles the
#                 last run kept, $BUILD_DIR/matrix/BASE/KERNEL.BOOT.console.log
#   MATRIX_KERNELS  only these columns, e.g. 'baseline series A' (default:
#                 every column; make check passes BASE_CHECK_MATRIX)
. "$(dirname "$0")/lib.sh"
. "$REPO/scripts/console.sh"
MATRIX_FILE=${MATRIX_FILE:-$CONFIGS/matrix.txt}
# The rows' tests: the project's, the tree's, and on 6.1 the 6.12 tree's.
export TESTS_FILE=${TESTS_FILE:-$(ls "$CONFIGS"/tests.txt "$CONFIGS"/upstream-tests.txt 2>/dev/null | xargs)}
MATRIX_BOOTS=${MATRIX_BOOTS:-4}
MATRIX_DIR=$BUILD_DIR/matrix/$BASE
MATRIX_REPORT_ONLY=${MATRIX_REPORT_ONLY:-0}
unset EXTRA_PATCH SERIES_UPTO

table=$(grep -v '^[[:space:]]*#' "$MATRIX_FILE" | grep .)
read -r -a kernels <<<"$(echo "$table" | head -1 | cut -d' ' -f2- | xargs)"
mapfile -t rows < <(echo "$table" | tail -n +2 | awk '{ print $1 }')
all_kernels=("${kernels[@]}")
[ "${#kernels[@]}" -gt 0 ] && [ "${#rows[@]}" -gt 0 ] ||
	die "$MATRIX_FILE: needs a header line (test KERNEL...) and one row per test"
# The tests to run: the rows' TEST parts.
mapfile -t tests < <(printf '%s\n' "${rows[@]%%/*}" | awk '!seen[$0]++')

# verdict RECORDS ROW: pass, fail, skip, or "none" when it never reported
# (RECORDS: console_records of a boot's console).
# ROW is TEST (the entry's own result) or TEST/CASE: CASE of program TEST
# (under its own entry or another, as root or as user), the full case
# name or its last dot-separated parts; any run that fails it fails it.
verdict() {
	local t=${2%%/*} c=
	[[ "$2" != */* ]] || c=${2#*/}
	awk -F'\t' -v t="$t" -v c="$c" '
		c == "" && $1 == t && $4 == "" { v[$5]++ }
		c != "" && $2 == t && ($4 == c || substr($4, length($4) - length(c)) == "." c) { v[$5]++ }
		END { print v["fail"] ? "fail" : v["pass"] ? "pass" : v["skip"] ? "skip" : "none" }' <<<"$1"
}

check_kernels "${kernels[@]}"

declare -A actual times expected
while read -r t expect; do
	read -r -a want <<<"$expect"
	for i in "${!kernels[@]}"; do expected[${kernels[$i]}/$t]=${want[$i]:--}; done
done < <(echo "$table" | tail -n +2)
if [ -n "${MATRIX_KERNELS:-}" ]; then
	kernels=()
	for k in $MATRIX_KERNELS; do
		[[ " ${all_kernels[*]} " == *" $k "* ]] || die "MATRIX_KERNELS: no column '$k' in $MATRIX_FILE"
		kernels+=("$k")
	done
fi
for k in "${kernels[@]}"; do
	start=$(date +%s)
	log "=== kernel $k: $(kernel_env "$k" | xargs)"
	run_rows=() boot=1
	for t in "${rows[@]}"; do
		if [ "${expected[$k/$t]}" = . ]; then
			actual[$k/$t]=.
		else
			run_rows+=("$t")
		fi
	done
	[ "${#run_rows[@]}" -gt 0 ] || die "$MATRIX_FILE: kernel $k runs nothing (every cell is '.')"
	while :; do
		mapfile -t run_tests < <(printf '%s\n' "${run_rows[@]%%/*}" | awk '!seen[$0]++')
		console=$MATRIX_DIR/$k.$boot.console.log
		if [ "$MATRIX_REPORT_ONLY" = 0 ]; then
			[ "$boot" -gt 1 ] || rm -f "$MATRIX_DIR/$k".*.console.log
			boot_kernel "$k" TESTS="${run_tests[*]}"
			mkdir -p "$MATRIX_DIR"
			cp "$KERNEL_OUT/console.log" "$console"
		fi
		[ -f "$console" ] || die "no console of boot $boot of $k ($console): run 'make matrix' first"
		records=$(console_records "$console")
		missed=()
		for t in "${run_rows[@]}"; do
			a=$(verdict "$records" "$t")
			[ "$boot" = 1 ] || [ "$a" != fail ] || a=fail@$boot
			actual[$k/$t]=$a
			[ "${expected[$k/$t]}" != fail ] || [ "$a" != pass ] || missed+=("$t")
		done
		[ "${#missed[@]}" -gt 0 ] && [ "$boot" -lt "$MATRIX_BOOTS" ] || break
		boot=$((boot + 1)) run_rows=("${missed[@]}")
		log "$k: not caught yet by ${missed[*]}: boot $boot of $MATRIX_BOOTS"
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
	for t in "${rows[@]}"; do
		printf '%-*s' "$tw" "$t"
		for i in "${!kernels[@]}"; do
			k=${kernels[$i]}
			w=${expected[$k/$t]} a=${actual[$k/$t]}
			mark=""
			if [ "$w" != - ] && [ "$w" != . ]; then
				if [ "$w" = "${a%@*}" ] || { [ "$w" = pass ] && [ "$a" = skip ]; }; then
					passed=$((passed + 1))
				else
					failed=$((failed + 1))
					mark=" MISMATCH"
				fi
			fi
			[ "$w" = . ] && a=""
			printf ' %-*s' "${kw[$i]}" "$w${a:+/$a}$mark"
		done
		echo
	done
	printf '%-*s' "$tw" "time (s)"
	for i in "${!kernels[@]}"; do printf ' %-*s' "${kw[$i]}" "${times[${kernels[$i]}]}"; done
	echo
	echo
	echo "$passed passed, $failed failed"
} >"$BUILD_DIR/matrix-$BASE.txt"
cat "$BUILD_DIR/matrix-$BASE.txt"
[ "$failed" = 0 ]

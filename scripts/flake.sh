#!/bin/bash
# 'make flake': how often each regression program fails. Boots each kernel
# of configs/BASE/matrix.txt once and runs, REPEAT times each, the programs the
# matrix expects to fail there, and on the PASS_KERNELS those it expects
# to pass. A program must fail 0 times where it should pass, and at least
# REPEAT - 1 times where it should fail. Prints a table (also in
# $BUILD_DIR/flakes-BASE.txt); the last line counts the kernel/program cells.
#   REPEAT         runs per program and kernel (default 20)
#   FLAKE_KERNELS  the columns to run (default: all of the matrix)
#   FLAKE_TESTS    the programs (default: the project's)
#   PASS_KERNELS   where expected passes are run too (default: series)
. "$(dirname "$0")/lib.sh"
MATRIX_FILE=${MATRIX_FILE:-$CONFIGS/matrix.txt}
REPEAT=${REPEAT:-20}
unset EXTRA_PATCH SERIES_UPTO

table=$(grep -v '^[[:space:]]*#' "$MATRIX_FILE" | grep .)
read -r -a all_kernels <<<"$(echo "$table" | head -1 | cut -d' ' -f2- | xargs)"
read -r -a kernels <<<"${FLAKE_KERNELS:-${all_kernels[*]}}"
read -r -a progs <<<"${FLAKE_TESTS:-$(cd "$OUR_SELFTESTS" &&
	grep -l TEST_HARNESS_MAIN -- *.c | sed 's/\.c$//' | xargs)}"

# expected PROG KERNEL: the matrix's verdict of the program on the kernel.
expected() {
	local i
	for i in "${!all_kernels[@]}"; do
		[ "${all_kernels[$i]}" = "$2" ] || continue
		echo "$table" | awk -v t="$1" -v c=$((i + 2)) '$1 == t { print $c }'
		return
	done
}

# The backstop of each run, from configs/BASE/tests.txt.
backstop() { awk -v t="$1" '$1 == t { print $2 }' "$CONFIGS/tests.txt"; }

declare -A want fails runs
cells=()
for k in "${kernels[@]}"; do
	list=$BUILD_DIR/flake-tests-$BASE.txt
	: >"$list"
	for p in "${progs[@]}"; do
		w=$(expected "$p" "$k")
		case "$w" in
		fail) ;;
		pass) [[ " ${PASS_KERNELS:-series} " == *" $k "* ]] || continue ;;
		*) continue ;;
		esac
		want[$k/$p]=$w
		cells+=("$k/$p")
		for i in $(seq "$REPEAT"); do
			echo "$p-$i $(backstop "$p") run-kselftest $p" >>"$list"
		done
	done
	[ -s "$list" ] || continue
	log "=== kernel $k: $(cut -d' ' -f1 "$list" | sed 's/-[0-9]*$//' | uniq -c | xargs)"
	boot_kernel "$k" TESTS_FILE="$list" TESTS='*'
	for p in "${progs[@]}"; do
		[ -n "${want[$k/$p]:-}" ] || continue
		runs[$k/$p]=$(tr -d '\r' <"$KERNEL_OUT/console.log" | grep -cE "^(not )?ok [0-9]+ $p-[0-9]+ " || true)
		fails[$k/$p]=$(tr -d '\r' <"$KERNEL_OUT/console.log" | grep -cE "^not ok [0-9]+ $p-[0-9]+ " || true)
		log "$k: $p failed ${fails[$k/$p]} of ${runs[$k/$p]} runs (expected: ${want[$k/$p]})"
	done
done

passed=0 failed=0
{
	echo "== flakes: failed runs of $REPEAT per program and kernel ($(config_name) config)"
	printf '%-70s %-24s %-8s %s\n' kernel program expected "failed/runs"
	for c in "${cells[@]}"; do
		k=${c%/*} p=${c##*/} w=${want[$c]} f=${fails[$c]:-0} r=${runs[$c]:-0}
		if { [ "$w" = pass ] && [ "$f" = 0 ]; } ||
			{ [ "$w" = fail ] && [ "$f" -ge $((REPEAT - 1)) ]; }; then
			ok=ok passed=$((passed + 1))
		else
			ok=FLAKY failed=$((failed + 1))
		fi
		[ "$r" = "$REPEAT" ] || { ok="$ok (only $r runs reported)"; failed=$((failed + 1)); }
		printf '%-70s %-24s %-8s %s/%s %s\n' "$k" "$p" "$w" "$f" "$r" "$ok"
	done
	echo
	echo "$passed passed, $failed failed"
} >"$BUILD_DIR/flakes-$BASE.txt"
cat "$BUILD_DIR/flakes-$BASE.txt"
[ "$failed" = 0 ]

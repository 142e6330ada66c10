#!/bin/bash
# 'make bench': run the benchmarks of configs/bench.txt on the base and on
# the series, in one run, and print each number with its ratio
# series/base. Results: $BUILD_DIR/bench.txt. Guest memory defaults to
# 3G here (the 1 GiB protect). Not part of 'make check'.
. "$(dirname "$0")/lib.sh"
export MEM=${MEM:-3G} TESTS_FILE=$REPO/configs/bench.txt
unset EXTRA_PATCH SERIES_UPTO

for mode in baseline series; do
	for s in series kernel selftests initramfs qemu; do
		MODE=$mode "$REPO/scripts/$s.sh"
	done
done

# numbers MODE: the "bench: key=value" lines of that kernel's console.
numbers() {
	tr -d '\r' <"$BUILD_DIR/out/$1-$(config_name)/console.log" |
		sed -n 's/^# bench: \([a-z0-9_]*\)=\([0-9.]*\)$/\1 \2/p'
}
{
	echo "== uffd-wp benchmarks, $(config_name) config, $(date -u +%F)"
	printf '%-28s %14s %14s %8s\n' number base series ratio
	join <(numbers baseline | sort) <(numbers series | sort) |
		awk '{ printf "%-28s %14s %14s %8.2f\n", $1, $2, $3, ($2 > 0 ? $3 / $2 : 0) }'
} | tee "$BUILD_DIR/bench.txt"

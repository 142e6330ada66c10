#!/bin/bash
# 'make bench': run the benchmarks of configs/bench.txt on the base and on
# the series, alternating, BENCH_RUNS times each (default 3), and print the
# median of each number with its ratio series/base. Results:
# $BUILD_DIR/bench.txt. Guest memory defaults to 3G here (the 1 GiB
# protect). Not part of 'make check': TCG on 2 host cores gives 4 vCPUs
# noisy timings, hence the repeats.
. "$(dirname "$0")/lib.sh"
export MEM=${MEM:-3G} TESTS_FILE=$REPO/configs/bench.txt
BENCH_RUNS=${BENCH_RUNS:-3}
unset EXTRA_PATCH SERIES_UPTO
runs=$BUILD_DIR/bench-runs
rm -rf "$runs"
mkdir -p "$runs"

for mode in baseline series; do
	for s in series kernel selftests initramfs; do
		MODE=$mode "$REPO/scripts/$s.sh"
	done
done
for i in $(seq 1 "$BENCH_RUNS"); do
	for mode in baseline series; do
		MODE=$mode "$REPO/scripts/qemu.sh"
		tr -d '\r' <"$BUILD_DIR/out/$mode-$(config_name)/console.log" |
			sed -n 's/^# bench: \([a-z0-9_]*\)=\([0-9.]*\)$/\1 \2/p' >>"$runs/$mode"
	done
done

# median MODE: "key median" for every number of that kernel's runs.
median() {
	sort -k1,1 -k2,2g "$runs/$1" | awk '
		function flush() { if (n) print key, v[int((n + 1) / 2)] }
		$1 != key { flush(); key = $1; n = 0 }
		{ v[++n] = $2 }
		END { flush() }'
}
{
	echo "== uffd-wp benchmarks, $(config_name) config, median of $BENCH_RUNS runs each"
	printf '%-28s %14s %14s %8s\n' number base series ratio
	join <(median baseline) <(median series) |
		awk '{ printf "%-28s %14s %14s %8.2f\n", $1, $2, $3, ($2 > 0 ? $3 / $2 : 0) }'
} | tee "$BUILD_DIR/bench.txt"

#!/bin/bash
# 'make bench': bench/uffd-wp-protect-cost on each kernel of BENCH_KERNELS
# (default: BASE_BENCH_KERNELS of configs/BASE/base.env: the base;
# series@0, the base built again, whose ratios show the noise; the series;
# v2's design, bench/BASE/alt-write-lock.patch; on 6.1 also the same in 32M
# chunks), booted in turn BENCH_RUNS times (default 10), so that a
# slow spell of the host hits every kernel. Also series@N, mutants, as in
# 'make matrix'.
# Each number: median and range over the runs, and the ratio to the
# baseline of the same run (median and range); then the goals (see goals()).
# BENCH_REPORT_ONLY=1 makes the tables and the plot again from the runs
# of the last bench, without booting anything. Results: $BUILD_DIR/bench/BASE/
# and, when BENCH_DOC=1 (the default for the default kernels and >= 10
# runs), Documentation/bench-$BASE_VERSION.{txt,png}.
#
# The guest: BENCH_SMP vCPUs (default 2: one per host core on the 2-core
# machines this runs on; with 4 vCPUs on 2 cores the control moved by 20%),
# MEM 3G (1 GiB populated, 8 GiB of zero-page PTEs).
. "$(dirname "$0")/lib.sh"
export MEM=${MEM:-3G} SMP=${BENCH_SMP:-2} TESTS_FILE=$REPO/configs/bench.txt
BENCH_RUNS=${BENCH_RUNS:-10}
default_kernels=$BASE_BENCH_KERNELS
BENCH_KERNELS=${BENCH_KERNELS:-$default_kernels}
[ "$BENCH_KERNELS" = "$default_kernels" ] && [ "$BENCH_RUNS" -ge 10 ] && BENCH_DOC=${BENCH_DOC:-1}
read -ra kernels <<<"$BENCH_KERNELS"
[ "${kernels[0]}" = baseline ] || die "BENCH_KERNELS must start with baseline (the ratios' base)"
unset EXTRA_PATCH SERIES_UPTO
dir=$BUILD_DIR/bench/$BASE
STAGES_FILE=$dir/stages.tsv	# not the guest run's
"$REPO/scripts/deps.sh" gnuplot-nox
# Build every kernel once; then only boot them, alternating.
run_bench() {
	local i k n kenv
	declare -A kout
	rm -rf "$dir"
	mkdir -p "$dir"
	for k in "${kernels[@]}"; do
		build_kernel "$k"
		kout[$k]=$KERNEL_OUT
	done
	start=$(date +%s)
	for i in $(seq 1 "$BENCH_RUNS"); do
		for k in "${kernels[@]}"; do
			mapfile -t kenv < <(kernel_env "$k")
			env "${kenv[@]}" "$REPO/scripts/qemu.sh" || true
			n=$(tr -d '\r' <"${kout[$k]}/console.log" |
				sed -n "s/^# bench: \([a-z0-9_.]*\)=\([0-9.-]*\)$/$k $i \1 \2/p" |
				tee -a "$dir/all" | wc -l)
			[ "$n" -gt 0 ] || die "run $i of $k printed no bench numbers (${kout[$k]}/console.log)"
			log "run $i/$BENCH_RUNS of $k: $n numbers ($(( $(date +%s) - start ))s so far)"
		done
	done
}
if [ "${BENCH_REPORT_ONLY:-0}" = 1 ]; then
	[ -s "$dir/all" ] || die "BENCH_REPORT_ONLY=1, but no runs in $dir/all"
	log "tables and plot from the runs in $dir/all"
else
	run_bench
fi

# One line per kernel and number: median min max of the values, then
# median min max of the ratios to the baseline of the same run.
awk -v base=baseline '
	function sort(a, n,   i, j, t) {
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
				t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
			}
	}
	function med(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	{ v[$1, $3, $2] = $4; runs[$2]; key[$3]; if (!($1 in seen)) { seen[$1]; order[++nk] = $1 } }
	END {
		for (ki = 1; ki <= nk; ki++) {
			k = order[ki]
			for (m in key) {
				n = r = 0
				for (i in runs) {
					if (!((k, m, i) in v)) continue
					x[++n] = v[k, m, i]
					if ((base, m, i) in v && v[base, m, i] > 0)
						y[++r] = v[k, m, i] / v[base, m, i]
				}
				if (!n) continue
				sort(x, n); sort(y, r)
				printf "%s %s %s %s %s", k, m, med(x, n), x[1], x[n]
				if (r) printf " %.3f %.3f %.3f", med(y, r), y[1], y[r]
				printf "\n"
			}
		}
	}' "$dir/all" | sort -k2,2 -k1,1 >"$dir/summary"

# The goals of the write-protect cost. Fault rates are compared through
# faults_vs_control (each boot's rate during protects over its own
# control), as the host moves whole boots by up to 30%: the raw control
# ratio and, with series@0 (the base built again) among the kernels, the
# spread of an identical kernel show the noise these numbers carry.
goals() {
	awk -v base=baseline -v kernels="${kernels[*]}" '
		BEGIN { nk = split(kernels, order, " ") }
		{ med[$1, $2] = $3; hi[$1, $2] = $5; rmed[$1, $2] = $6; rlo[$1, $2] = $7; rhi[$1, $2] = $8 }
		function goal(text, ok) { printf "  %-66s %s\n", text, ok ? "met" : "MISSED" }
		function info(text) { printf "  %s\n", text }
		END {
			n = split("p4k p2m p1g zero8g", cs, " ")
			for (ki = 2; ki <= nk; ki++) {
				k = order[ki]
				printf "%s vs baseline:\n", k
				lo = 9; up = 0; nlo = 9; nup = 0
				for (c = 1; c <= n; c++) {
					m = cs[c] ".control_faults_per_s"
					if (rlo[k, m] < lo) lo = rlo[k, m]
					if (rhi[k, m] > up) up = rhi[k, m]
					m = cs[c] ".faults_vs_control"
					if (rlo[k, m] < nlo) nlo = rlo[k, m]
					if (rhi[k, m] > nup) nup = rhi[k, m]
				}
				info(sprintf("control faults/s, ratio per run: %.3f - %.3f (the host)", lo, up))
				info(sprintf("faults/s over control, ratio per run: %.3f - %.3f", nlo, nup))
				goal(sprintf("4K protect latency <= 1.05x (median %.3fx)", rmed[k, "p4k.protect_p50_us"]),
				     rmed[k, "p4k.protect_p50_us"] <= 1.05)
				goal(sprintf("faults/s during 4K protects >= 0.95x (median %.3fx)", rmed[k, "p4k.faults_vs_control"]),
				     rmed[k, "p4k.faults_vs_control"] >= 0.95)
				goal(sprintf("faults/s during 1G protects >= 0.90x (median %.3fx)", rmed[k, "p1g.faults_vs_control"]),
				     rmed[k, "p1g.faults_vs_control"] >= 0.9)
				for (c = 1; c <= n; c++) {
					m = cs[c] ".lat_max_us"
					d = med[k, m] - med[base, m]
					goal(sprintf("longest fault wait, %s: median %+.0f us vs baseline (<= 1000; worst %.0f vs %.0f)",
						     cs[c], d, hi[k, m], hi[base, m]), d <= 1000)
				}
			}
		}' "$dir/summary"
}

{
	echo "== bench/uffd-wp-protect-cost, $(config_name) config, $SMP vCPUs, $BENCH_RUNS runs per kernel, alternating"
	echo "== each: median [min - max] over the runs; ratio: to the baseline of the same run"
	printf '%-30s %-22s %28s %24s\n' number kernel value ratio
	awk '{ r = NF > 5 ? sprintf("%.3f [%.3f - %.3f]", $6, $7, $8) : ""
	       printf "%-30s %-22s %10s [%s - %s] %24s\n", $2, $1, $3, $4, $5, r }' "$dir/summary"
	echo
	goals
} | tee "$dir/bench.txt"

# The plot: faults/s during protects and the longest fault wait, per case.
for k in "${kernels[@]}"; do
	for c in p4k p2m p1g zero8g; do
		awk -v k="$k" -v c="$c" '
			$1 == k && $2 == c ".faults_vs_control" { f = $6; flo = $7; fhi = $8 }
			$1 == k && $2 == c ".control_faults_per_s" { cf = $6 }
			$1 == k && $2 == c ".lat_max_us" { mx = $3; mlo = $4; mhi = $5 }
			$1 == k && $2 == c ".lat_p99_us" { p99 = $3 }
			END { print c, f + 0, flo + 0, fhi + 0, cf + 0, mx, mlo, mhi, p99 }' "$dir/summary"
	done >"$dir/plot-$k.dat"
done
plots=
for ki in "${!kernels[@]}"; do
	k=${kernels[$ki]}
	plots+="${plots:+, }'$dir/plot-$k.dat' using (\$0 + $ki * 0.15):6:7:8 with yerrorbars title '$k' pt 7 lc $((ki + 1))"
done
ratios=
for ki in "${!kernels[@]}"; do
	[ "$ki" = 0 ] && continue
	k=${kernels[$ki]}
	ratios+="${ratios:+, }'$dir/plot-$k.dat' using (\$0 + $ki * 0.15):2:3:4 with yerrorbars title '$k' pt 7 lc $((ki + 1))"
	ratios+=", '$dir/plot-$k.dat' using (\$0 + $ki * 0.15):5 with points title '$k control' pt 6 lc $((ki + 1))"
done
gnuplot <<EOF || die "gnuplot failed"
set terminal pngcairo size 1000,800 font ",10" noenhanced
set output '$dir/bench.png'
set multiplot layout 2,1 title "uffd-wp protect cost, $(config_name) config, $SMP vCPUs, $BENCH_RUNS runs (median, min-max)"
set xrange [-0.5:3.5]
set xtics ("4K" 0, "2M" 1, "1G" 2, "8G zero" 3)
set grid y
set ylabel "faults/s during protects / control, x baseline"
set key outside right
plot 1 with lines dt 2 lc 0 notitle, 0.9 with lines dt 3 lc 0 notitle, $ratios
set logscale y
set ylabel "longest fault wait (us)"
plot $plots
unset multiplot
EOF
if [ "${BENCH_DOC:-0}" = 1 ]; then
	cp "$dir/bench.txt" "$REPO/Documentation/bench-$BASE_VERSION.txt"
	cp "$dir/bench.png" "$REPO/Documentation/bench-$BASE_VERSION.png"
	log "wrote Documentation/bench-$BASE_VERSION.{txt,png}"
fi
stage_done "$BENCH_RUNS runs of ${kernels[*]}; table: $dir/bench.txt, plot: $dir/bench.png"

#!/bin/bash
# 'make bench': bench/uffd-wp-protect-cost on each kernel of BENCH_KERNELS
# (default "baseline series"; also series@N, mutants and the alternative
# designs bench/NAME.patch, as in 'make matrix'), booted in turn BENCH_RUNS
# times (default 10), so that a slow spell of the host hits every kernel.
# Each number: median and range over the runs, and the ratio to the
# baseline of the same run (median and range). The bench's control (the
# same fault load and phase timing with no ioctl) must stay within
# 0.97-1.03 of the baseline's in every run, or its numbers say nothing.
# Results: $BUILD_DIR/bench/ and, when BENCH_DOC=1 (the default for the
# default kernels), Documentation/bench-$BASE_VERSION.{txt,png}.
#
# The guest: BENCH_SMP vCPUs (default 2: one per host core on the 2-core
# machines this runs on; with 4 vCPUs on 2 cores the control moved by 20%),
# MEM 3G (1 GiB populated, 8 GiB of zero-page PTEs).
. "$(dirname "$0")/lib.sh"
export MEM=${MEM:-3G} SMP=${BENCH_SMP:-2} TESTS_FILE=$REPO/configs/bench.txt
BENCH_RUNS=${BENCH_RUNS:-10}
BENCH_KERNELS=${BENCH_KERNELS:-baseline series}
[ "$BENCH_KERNELS" = "baseline series" ] && BENCH_DOC=${BENCH_DOC:-1}
read -ra kernels <<<"$BENCH_KERNELS"
[ "${kernels[0]}" = baseline ] || die "BENCH_KERNELS must start with baseline (the ratios' base)"
unset EXTRA_PATCH SERIES_UPTO
dir=$BUILD_DIR/bench
rm -rf "$dir"
mkdir -p "$dir"
"$REPO/scripts/deps.sh" gnuplot-nox

# Build every kernel once; then only boot them, alternating.
declare -A kout
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

# The goals of the write-protect cost, and whether the control held.
goals() {
	awk -v base=baseline '
		{ med[$1, $2] = $3; hi[$1, $2] = $5; rmed[$1, $2] = $6; rlo[$1, $2] = $7; rhi[$1, $2] = $8
		  if (!($1 in seen)) { seen[$1]; order[++nk] = $1 } }
		function goal(k, text, ok) { printf "  %-58s %s\n", text, ok ? "met" : "MISSED" }
		END {
			for (ki = 2; ki <= nk; ki++) {
				k = order[ki]
				printf "%s vs baseline:\n", k
				ok = 1
				split("p4k p2m p1g zero8g", cs, " ")
				for (c in cs) {
					m = cs[c] ".control_faults_per_s"
					if (rlo[k, m] < 0.97 || rhi[k, m] > 1.03) ok = 0
				}
				goal(k, "control faults/s within 0.97-1.03 in every run", ok)
				goal(k, sprintf("4K protect latency <= 1.05x (median %.3fx)", rmed[k, "p4k.protect_p50_us"]),
				     rmed[k, "p4k.protect_p50_us"] <= 1.05)
				goal(k, sprintf("faults/s during 4K protects >= 0.95x (median %.3fx)", rmed[k, "p4k.faults_per_s"]),
				     rmed[k, "p4k.faults_per_s"] >= 0.95)
				goal(k, sprintf("faults/s during 1G protects >= 0.90x (median %.3fx)", rmed[k, "p1g.faults_per_s"]),
				     rmed[k, "p1g.faults_per_s"] >= 0.9)
				for (c in cs) {
					m = cs[c] ".lat_max_us"
					d = hi[k, m] - hi[base, m]
					goal(k, sprintf("longest fault wait, %s: %+.0f us vs baseline (<= 1000)", cs[c], d), d <= 1000)
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
			$1 == k && $2 == c ".faults_per_s" { f = $6; flo = $7; fhi = $8 }
			$1 == k && $2 == c ".control_faults_per_s" { cf = $6 }
			$1 == k && $2 == c ".lat_max_us" { mx = $3; mlo = $4; mhi = $5 }
			$1 == k && $2 == c ".lat_p99_us" { p99 = $3 }
			END { print c, f + 0, flo + 0, fhi + 0, cf + 0, mx, mlo, mhi, p99 }' "$dir/summary"
	done >"$dir/plot-$k.dat"
done
plots=
for ki in "${!kernels[@]}"; do
	k=${kernels[$ki]}
	plots+="${plots:+, }'$dir/plot-$k.dat' using (\$0 + $ki * 0.15):7:8:9 with yerrorbars title '$k' pt 7 lc $((ki + 1))"
done
ratios=
for ki in "${!kernels[@]}"; do
	[ "$ki" = 0 ] && continue
	k=${kernels[$ki]}
	ratios+="${ratios:+, }'$dir/plot-$k.dat' using (\$0 + $ki * 0.15):2:3:4:xtic(1) with yerrorbars title '$k' pt 7 lc $((ki + 1))"
	ratios+=", '$dir/plot-$k.dat' using (\$0 + $ki * 0.15):5 with points title '$k control' pt 6 lc $((ki + 1))"
done
gnuplot <<EOF || die "gnuplot failed"
set terminal pngcairo size 1000,800 font ",10"
set output '$dir/bench.png'
set multiplot layout 2,1 title "uffd-wp protect cost, $(config_name) config, $SMP vCPUs, $BENCH_RUNS runs (median, min-max)"
set xrange [-0.5:3.5]
set grid y
set ylabel "faults/s during protects, x baseline"
set key outside right
plot 1 with lines dt 2 lc 0 notitle, 0.9 with lines dt 3 lc 0 notitle, $ratios
set logscale y
set ylabel "longest fault wait (us)"
set xtics ("4K" 0, "2M" 1, "1G" 2, "8G zero" 3)
plot $plots
unset multiplot
EOF
if [ "${BENCH_DOC:-0}" = 1 ]; then
	cp "$dir/bench.txt" "$REPO/Documentation/bench-$BASE_VERSION.txt"
	cp "$dir/bench.png" "$REPO/Documentation/bench-$BASE_VERSION.png"
	log "wrote Documentation/bench-$BASE_VERSION.{txt,png}"
fi
stage_done "$BENCH_RUNS runs of ${kernels[*]}; table: $dir/bench.txt, plot: $dir/bench.png"

#!/bin/bash
# 'make regress': no regression beyond the project's own tests. Builds the
# base tree's whole vm selftest suite once, statically, from $BASE_TAG, so
# that every kernel runs the very same binaries, and boots each kernel of
# REGRESS_KERNELS (default: baseline series) with it: the 6.12 tree's
# uffd-unit-tests and uffd-stress (configs/6.1/upstream-tests.txt), then the
# tree's run_vmtests.sh (configs/6.1/regress.txt). 6.1 only so far. Compares the verdicts test
# by test against the first kernel: run_vmtests.sh's [PASS]/[FAIL]/[SKIP]
# per command line, uffd-unit-tests' "Testing X on Y... done/skipped/
# failed" per case, the others per program. Worse is pass -> skip -> fail
# -> no verdict at all; a test worse on any kernel, more kernel reports on
# its console than on the first's, or a guest that did not finish fails
# the run. Table with each test's time per kernel:
# $BUILD_DIR/regress/regress.txt and, for the default kernels with
# REGRESS_DOC=1 (their default), Documentation/regress-$BASE_VERSION.txt.
# Last line: "N passed, N failed, N skipped", one per test (skipped:
# skipped on every kernel). REGRESS_REPORT_ONLY=1 compares the consoles of
# the last make regress again (kept in $BUILD_DIR/regress/), without
# building or booting anything.
#   REGRESS_KERNELS  kernels, named as in 'make matrix'; the first is the
#                    reference
#   REGRESS_MEM      guest memory (default 6G)
#   REGRESS_TIMEOUT  seconds before a guest is declared hung (default
#                    10800: the sum of the tests' own timeouts is 9300)
. "$(dirname "$0")/lib.sh"
. "$REPO/scripts/console.sh"
REGRESS_KERNELS=${REGRESS_KERNELS:-baseline series}
[ -f "$CONFIGS/regress.txt" ] ||
	die "make regress runs on BASE=6.1 only: there is no configs/$BASE/regress.txt"
# mremap_test maps 2 GiB regions.
REGRESS_MEM=${REGRESS_MEM:-6G}
REGRESS_TIMEOUT=${REGRESS_TIMEOUT:-10800}
read -ra kernels <<<"$REGRESS_KERNELS"
[ "${#kernels[@]}" -ge 2 ] || die "REGRESS_KERNELS needs two kernels or more, not '$REGRESS_KERNELS'"
[ "$REGRESS_KERNELS" = "baseline series" ] && [ "$DEBUG" = 0 ] && REGRESS_DOC=${REGRESS_DOC:-1}
unset EXTRA_PATCH SERIES_UPTO
dir=$BUILD_DIR/regress/$BASE
suite=$dir/vm-$BASE_TAG
mkdir -p "$dir"

# The suite, built after the first kernel (whose stage installed the uapi
# headers; the series changes none). Programs that do not build are
# listed; run_vmtests.sh then reports them failed on every kernel.
# Whatever is built must be static: the guest has no dynamic loader.
build_suite() {
	local src=$dir/src log=$dir/suite-build.log vm
	vm=$src/tools/testing/selftests/vm
	[ -f "$suite/.done" ] && return
	log "building the vm selftests of $BASE_TAG into $suite"
	rm -rf "$src" "$suite"
	mkdir -p "$src" "$suite"
	git -C "$SRC_DIR" archive "$BASE_TAG" tools lib/test_hmm_uapi.h mm/gup_test.h include/vdso |
		tar -x -C "$src"
	make -C "$vm" -k -j"$JOBS" top_srcdir="$src" OUTPUT="$suite" CC="gcc -static" \
		KHDR_INCLUDES="-isystem $OBJ_DIR/usr/include" >"$log" 2>&1 || true
	# The scripts run_vmtests.sh runs (TEST_PROGS, TEST_FILES).
	cp "$vm"/*.sh "$suite/"
	grep -E '^[^ ]*\.c:[0-9]+:[0-9]+: (fatal )?error' "$log" | sed 's/^/    /' >&2 || true
	[ -x "$suite/userfaultfd" ] || die "the suite did not build (log: $log)"
	if file "$suite"/* | grep 'ELF' | grep -v 'statically linked'; then
		die "programs above are not statically linked (log: $log)"
	fi
	touch "$suite/.done"
}

# results LOG: "name<TAB>verdict<TAB>seconds" per test of a console log.
results() {
	tr -d '\r' <"$1" | awk '
	function put(name, v, secs) {
		if (name in seen)
			name = name " #" ++seen[name]
		seen[name] = 1
		printf "%s\t%s\t%s\n", name, v, secs
	}
	# run_test() prints a title "running CMD" between two lines of its
	# length; guest/run-vmtests the uptime after it and before the verdict.
	/^# running run_vmtests: / { vm = 1; next }
	vm && /^(not )?ok [0-9]+ run_vmtests/ { vm = 0; next }
	vm && /^# running / && length(prev) == length($0) { title = substr($0, 11) }
	vm && /^# uptime / {
		if (title != "") { name = title; t0 = $3; title = "" }
		t = $3
		next
	}
	{ prev = $0 }
	vm && /^# \[(PASS|FAIL|SKIP)\]$/ {
		v = $2 == "[PASS]" ? "pass" : $2 == "[SKIP]" ? "skip" : "fail"
		put("run_vmtests: " name, v, sprintf("%.1f", t - t0))
		next
	}
	/^# running uffd-unit-tests: / { unit = 1 }
	/^(not )?ok [0-9]+ uffd-unit-tests/ { unit = 0 }
	unit && /^# Testing .*\.\.\. / {
		s = substr($0, 11)
		i = index(s, "... ")
		r = substr(s, i + 4)
		v = r ~ /^done/ ? "pass" : r ~ /^skipped/ ? "skip" : "fail"
		put("uffd-unit-tests: " substr(s, 1, i - 1), v, "-")
		next
	}
	/^(not )?ok [0-9]+ uffd-(unit-tests|stress)/ {
		v = /^not ok/ ? "fail" : /# SKIP/ ? "skip" : "pass"
		secs = "-"
		if (match($0, /[0-9]+s$/))
			secs = substr($0, RSTART, RLENGTH - 1)
		put($(/^not/ ? 4 : 3), v, secs)
	}'
}

declare -A out
check_kernels "${kernels[@]}"
for k in "${kernels[@]}"; do
	start=$(date +%s)
	console=$dir/$k.console.log
	if [ "${REGRESS_REPORT_ONLY:-0}" = 1 ]; then
		[ -f "$console" ] || die "REGRESS_REPORT_ONLY=1, but no $console from an earlier make regress"
	else
		log "=== kernel $k"
		# The suite needs the uapi headers of a built kernel.
		[ -f "$suite/.done" ] || build_kernel "$k"
		build_suite
		boot_kernel "$k" TESTS_FILE="$CONFIGS/upstream-tests.txt $CONFIGS/regress.txt" \
			TESTS='run_vmtests uffd-unit-tests uffd-stress-*' GUEST_PROGS="$suite" \
			GUEST_TIMEOUT="$REGRESS_TIMEOUT" MEM="$REGRESS_MEM"
		# make run and make matrix boot this kernel too: keep what this run saw.
		cp "$KERNEL_OUT/console.log" "$console"
		sed -n 's/^status=//p' "$KERNEL_OUT/guest.txt" >"$dir/$k.status"
	fi
	grep -q '^# running run_vmtests: ' "$console" ||
		die "$console: run_vmtests.sh never started (not a console of make regress)"
	out[$k]=$console
	results "$console" >"$dir/$k.tsv"
	log "$k: $(wc -l <"$dir/$k.tsv") verdicts in $(($(date +%s) - start))s"
done

# The table, in the order the first kernel ran the tests; then a line
# "counts P F S".
compare() {
	awk -F'\t' -v kernels="${kernels[*]}" '
	BEGIN {
		n = split(kernels, ks, " ")
		rank["pass"] = 3; rank["skip"] = 2; rank["fail"] = 1
	}
	{
		k = FILENAME; sub(/.*\//, "", k); sub(/\.tsv$/, "", k)
		if (!($1 in known)) { known[$1] = 1; order[m++] = $1 }
		v[k, $1] = $2; secs[k, $1] = $3
	}
	END {
		printf "%-70s", "test"
		for (i = 1; i <= n; i++) printf " %-16s", ks[i]
		print ""
		for (j = 0; j < m; j++) {
			t = order[j]
			printf "%-70s", t
			ref = (ks[1], t) in v ? rank[v[ks[1], t]] : 0
			worse = ""; all_skip = 1
			for (i = 1; i <= n; i++) {
				got = (ks[i], t) in v ? v[ks[i], t] : "none"
				printf " %-16s", got " (" ((ks[i], t) in v ? secs[ks[i], t] : "-") ")"
				if (rank[got] + 0 < ref) worse = worse " " ks[i]
				if (got != "skip") all_skip = 0
			}
			if (worse != "") { failed++; printf "  WORSE on%s", worse }
			else if (all_skip) skipped++
			else passed++
			print ""
		}
		printf "counts %d %d %d\n", passed, failed, skipped
	}' "${kernels[@]/%/.tsv}"
}

table=$dir/regress.txt
cd "$dir" || die "no $dir"
compare >"$dir/compare.out"
read -r _ passed failed skipped < <(tail -1 "$dir/compare.out")
# end_row WHAT KERNELS: end a row of the table, failed on KERNELS if any.
end_row() {
	if [ -n "$2" ]; then
		failed=$((failed + 1))
		printf '  %s on%s' "$1" "$2"
	else
		passed=$((passed + 1))
	fi
	echo
}
{
	echo "== vm selftests of $BASE_TAG; the 6.12 tree's uffd-unit-tests, uffd-stress"
	echo "== verdict (seconds) per kernel; worse than the first kernel fails"
	sed '$d' "$dir/compare.out"
	printf '%-70s' "kernel reports on the console"
	ref="" worse=""
	for k in "${kernels[@]}"; do
		n=$(console_errors "${out[$k]}" | grep -c . || true)
		printf ' %-16s' "$n"
		[ -n "$ref" ] || ref=$n
		[ "$n" -le "$ref" ] || worse+=" $k"
	done
	end_row WORSE "$worse"
	printf '%-70s' "guest"
	unfinished=""
	for k in "${kernels[@]}"; do
		status=$(cat "$dir/$k.status" 2>/dev/null || echo unknown)
		printf ' %-16s' "${status%% *}"
		[ "$status" = finished ] || unfinished+=" $k"
	done
	end_row "NOT FINISHED" "$unfinished"
} >"$table"
cat "$table"
[ "${REGRESS_DOC:-0}" = 1 ] && cp "$table" "$REPO/Documentation/regress-$BASE_VERSION.txt"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

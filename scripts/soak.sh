#!/bin/bash
# 'make soak': the race program's soak on the series, debug kernel (KASAN,
# lockdep, DEBUG_VM): uffd-wp-race with UFFD_WP_RACE_SOAK_CYCLES set, so
# each memory type (anon, THP, shmem, private hugetlb, anon shared with a
# child so that writes copy) runs that many protect/unprotect cycles while
# two writers write every page and a fault handler resolves their faults
# (see the program's header for which oracle judges which cycles). The
# guest prints each type's progress every 10 s. Passes when every type
# passes (a type the program skips fails the soak) and the console shows
# no kernel report. The table (cycles, rounds, time, lost writes per type)
# goes to $BUILD_DIR/soak-BASE.txt and, with SOAK_DOC=1 (default for the
# series' debug kernel), Documentation/soak-$BASE_VERSION.txt.
#   SOAK_CYCLES   protects per memory type (default 1000000, at most
#                 4000000: the program gives each type 12 h, and anon does
#                 about 190 cycles/s here)
#   SOAK_KERNEL   the kernel, named as in 'make matrix' (default series)
#   DEBUG         the debug kernel (default 1 here)
export DEBUG=${DEBUG:-1}
. "$(dirname "$0")/lib.sh"
. "$REPO/scripts/console.sh"
SOAK_CYCLES=${SOAK_CYCLES:-1000000}
SOAK_KERNEL=${SOAK_KERNEL:-series}
[[ "$SOAK_CYCLES" =~ ^[1-9][0-9]{0,6}$ ]] && [ "$SOAK_CYCLES" -le 4000000 ] ||
	die "SOAK_CYCLES must be a number from 1 to 4000000, not '$SOAK_CYCLES'"
[ "$SOAK_KERNEL" = series ] && [ "$DEBUG" = 1 ] && SOAK_DOC=${SOAK_DOC:-1}
unset EXTRA_PATCH SERIES_UPTO
# Seconds the guest gets: the boot, the program's other tests, and 30 ms
# per cycle for the five types (here, 4 vCPUs on 2 host cores: 15 ms,
# anon and anon_cow 5.3 ms each).
timeout=$((600 + SOAK_CYCLES * 30 / 1000))

list=$BUILD_DIR/soak-tests-$BASE.txt
echo "uffd-wp-soak $timeout env UFFD_WP_RACE_SOAK_CYCLES=$SOAK_CYCLES uffd-wp-race" >"$list"
log "$SOAK_KERNEL, $(config_name) kernel: $SOAK_CYCLES cycles per memory type (guest timeout ${timeout}s)"
start=$(date +%s)
boot_kernel "$SOAK_KERNEL" TESTS_FILE="$list" TESTS='*' GUEST_TIMEOUT=$((timeout + 300)) \
	GUEST_PROGRESS='^# # [a-z_]+: [0-9]+ of [0-9]+ cycles'
secs=$(($(date +%s) - start))
console=$KERNEL_OUT/console.log

# Per type, from the program's summary lines ("# # anon: 64 x 4K, 1234 ms:
# 56 rounds, 1000000 protects", "# # anon: 0 lost writes, ...") and the
# harness verdict of its soak test.
table=$BUILD_DIR/soak-$BASE.txt
failed=0
errors=$(console_errors "$console" | grep -c . || true)
{
	echo "== soak: $SOAK_KERNEL-$(config_name), $SOAK_CYCLES cycles per memory type, $(date -u +%Y-%m-%d)"
	printf '%-10s %12s %8s %10s %8s %6s %s\n' type cycles rounds "time (s)" "cycles/s" lost verdict
	for type in anon anon_thp shmem hugetlb anon_cow; do
		sum=$(tr -d '\r' <"$console" |
			sed -n "/RUN .*uffd_wp_race\.$type\.soak /,/ok [0-9]* uffd_wp_race\.$type\.soak$/p")
		read -r ms rounds cycles < <(echo "$sum" |
			sed -n "s/^# # $type: .*, \([0-9]*\) ms: \([0-9]*\) rounds, \([0-9]*\) protects$/\1 \2 \3/p") || true
		lost=$(echo "$sum" | sed -n "s/^# # $type: \([0-9]*\) lost writes.*/\1/p")
		verdict=$(echo "$sum" | sed -n "s/^# \(not ok\|ok\) [0-9]* uffd_wp_race\.$type\.soak$/\1/p")
		# 6.1's harness names no test on its SKIP line.
		echo "$sum" | grep -q '^# #  *SKIP ' && verdict=skipped
		[ "$verdict" = ok ] && [ "${lost:-x}" = 0 ] && [ "${cycles:-0}" -ge "$SOAK_CYCLES" ] || {
			failed=$((failed + 1)); verdict="${verdict:-none} FAILED"; }
		printf '%-10s %12s %8s %10s %8s %6s %s\n' "$type" "${cycles:--}" "${rounds:--}" \
			"$(awk -v ms="${ms:-0}" 'BEGIN { printf "%.0f", ms / 1000 }')" \
			"$(awk -v c="${cycles:-0}" -v ms="${ms:-0}" 'BEGIN { printf "%.0f", ms ? c * 1000 / ms : 0 }')" \
			"${lost:--}" "$verdict"
	done
	echo "kernel reports on the console: $errors"
	echo "guest: $(grep '^status=' "$KERNEL_OUT/guest.txt" | cut -d= -f2); whole soak ${secs}s"
} >"$table"
cat "$table"
[ "${SOAK_DOC:-0}" = 1 ] && cp "$table" "$REPO/Documentation/soak-$BASE_VERSION.txt"
[ "$failed" = 0 ] && [ "$errors" = 0 ] || die "soak failed: $failed memory types, $errors kernel reports (console: $console)"
log "soak passed: ${secs}s"

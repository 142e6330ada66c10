#!/bin/bash
# Stage "qemu": boot the kernel and initramfs of this run in a 4-vCPU guest
# and collect its serial console. Fails when the guest hangs (timeout),
# dies before finishing, prints a kernel error, or reports a failed test.
#   ACCEL          tcg (default, multi-threaded) | kvm (probed first; falls
#                  back to TCG with a message when absent or hanging)
#   GUEST_TIMEOUT  seconds before a guest is declared hung (default 2400)
#   GUEST_APPEND   extra kernel command line (e.g. uffd.selftest=panic)
#   SMP, MEM       vCPUs (default 4: the races need three) and memory
#   GUEST_PROGRESS console lines to show while the guest runs, besides the
#                  TAP results (an extended regular expression)
. "$(dirname "$0")/lib.sh"
. "$REPO/scripts/console.sh"
need_cmd qemu-system-x86_64 timeout

ACCEL=${ACCEL:-tcg}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-2400}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-30}
SMP=${SMP:-4}
MEM=${MEM:-2G}
HUGEPAGES=${HUGEPAGES:-200}
GUEST_APPEND=${GUEST_APPEND:-}
GUEST_PROGRESS=${GUEST_PROGRESS:-}
KVM_DEV=${KVM_DEV:-/dev/kvm}
kernel=$OUT_DIR/bzImage
initrd=$OUT_DIR/initramfs.cpio.gz
log_file=$OUT_DIR/console.log

accel_args() {
	case "$1" in
	tcg) echo "-accel tcg,thread=multi -cpu max" ;;
	kvm) echo "-accel kvm -cpu host,-arch-capabilities" ;;
	esac
}

# boot ACCEL LOG TIMEOUT APPEND: run the guest; the exit status is timeout's.
boot() {
	# shellcheck disable=SC2046
	timeout --kill-after=10 "$3" qemu-system-x86_64 $(accel_args "$1") \
		-smp "$SMP" -m "$MEM" -nodefaults -display none -no-reboot \
		-serial "file:$2" -kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 uffd.hugepages=$HUGEPAGES $4" \
		</dev/null >"$2.qemu" 2>&1
}

tail_console() {
	log "console tail ($1):"
	tr -d '\r' <"$1" | tail -n "${2:-25}" | sed 's/^/    | /' >&2
}

case "$ACCEL" in
tcg | kvm) ;;
*) die "ACCEL must be tcg or kvm, not '$ACCEL'" ;;
esac
if [ "$ACCEL" = kvm ] && [ ! -w "$KVM_DEV" ]; then
	log "KVM asked for, but $KVM_DEV is absent or not writable: falling back to TCG"
	ACCEL=tcg
fi
[ -f "$kernel" ] || die "no kernel at $kernel: run the kernel stage first"
[ -f "$initrd" ] || die "no initramfs at $initrd: run the initramfs stage first"

if [ "$ACCEL" = kvm ]; then
	log "KVM asked for: probe boot (${PROBE_TIMEOUT}s)"
	probe=$OUT_DIR/kvm-probe.log
	rm -f "$probe"
	boot kvm "$probe" "$PROBE_TIMEOUT" uffd.probe=1 || true
	if grep -q 'uffd-harness: end probe' "$probe" 2>/dev/null; then
		log "KVM probe boot finished: using KVM"
	else
		log "KVM probe boot did not finish within ${PROBE_TIMEOUT}s (nested KVM hangs here): falling back to TCG"
		tail_console "$probe" 5
		ACCEL=tcg
	fi
fi

log "booting $(kernel_name)-$(config_name) with $ACCEL, $SMP vCPUs, $MEM; timeout ${GUEST_TIMEOUT}s"
log "console: $log_file"
rm -f "$log_file"
: >"$log_file"
boot "$ACCEL" "$log_file" "$GUEST_TIMEOUT" "$GUEST_APPEND" &
qemu_pid=$!
# Progress: echo each TAP result (and GUEST_PROGRESS line) as it appears.
shown=0
while kill -0 "$qemu_pid" 2>/dev/null; do
	sleep 2
	mapfile -t results < <(console_progress "$log_file" "$GUEST_PROGRESS")
	while [ "$shown" -lt "${#results[@]}" ]; do
		log "  ${results[$shown]}  [+$(($(date +%s) - stage_start))s]"
		shown=$((shown + 1))
	done
done
rc=0
wait "$qemu_pid" || rc=$?

status=finished
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	status="hung (no end after ${GUEST_TIMEOUT}s, killed)"
elif ! grep -q 'uffd-harness: end done' "$log_file"; then
	status="died before finishing (qemu exit $rc)"
fi
errors=$(console_errors "$log_file")
read -r passed failed skipped < <(console_count "$log_file")
printf 'accel=%s\nstatus=%s\npassed=%s\nfailed=%s\nskipped=%s\n' \
	"$ACCEL" "$status" "$passed" "$failed" "$skipped" >"$OUT_DIR/guest.txt"
printf '%s\n' "$errors" >"$OUT_DIR/console-errors.txt"

verdict=ok
if [ "$status" != finished ]; then
	log "guest $status"
	verdict=fail
fi
if [ -n "$errors" ]; then
	log "kernel errors on the console:"
	sed -n '1,20s/^/    ! /p' <<<"$errors" >&2
	verdict=fail
fi
[ "$failed" = 0 ] || verdict=fail
[ "$verdict" = ok ] || tail_console "$log_file"
stage_done "$ACCEL, $status, $passed passed, $failed failed, $skipped skipped"
[ "$verdict" = ok ] || die "guest run failed: $status, $failed failed tests, $(echo "$errors" | grep -c .) kernel errors"

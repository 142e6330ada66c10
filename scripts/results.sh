#!/bin/bash
# Stage "results": summarize the run of one kernel: which kernel and config,
# the accelerator, every test's verdict (with the subtests a program
# reported), the time of each stage. Written to $OUT_DIR/results.txt; the
# last line is "N passed, N failed, N skipped". Exits 1 on any failure.
#
# Besides the guest's tests it counts two checks of its own: the guest
# finished (no hang, no crash) and its console shows no kernel error.
. "$(dirname "$0")/lib.sh"
. "$REPO/scripts/console.sh"

log_file=$OUT_DIR/console.log
[ -f "$log_file" ] || die "no console log at $log_file: run the qemu stage first"
# shellcheck disable=SC1091
. "$OUT_DIR/guest.txt"
planned=$(grep -c . "$OUT_DIR/initramfs/tests.txt" || true)

summarize() {
	local reported missing errors
	echo "== uffd-wp-tlb results: $(kernel_name) ($(config_name) config)"
	echo "base:     $BASE_PACKAGE $BASE_VERSION ($BASE_TAG)"
	if [ -s "$OUT_DIR/commits.txt" ]; then
		echo "patches:"
		tac "$OUT_DIR/commits.txt" | sed 's/^/  /'
	else
		echo "patches:  none"
	fi
	echo "accel:    $accel"
	echo "guest:    $status"
	echo "console:  $log_file"
	echo "summary:  $OUT_DIR/results.txt"
	echo
	echo "tests:"
	tr -d '\r' <"$log_file" |
		grep -E '^(not )?ok [0-9]+ |^(# +)+(not )?ok [0-9]+ ' |
		sed -E 's/^(# +)+/      /; s/^(ok|not ok)/  \1/'
	reported=$(console_tap "$log_file" | grep -c . || true)
	missing=$((planned - reported))
	[ "$missing" -le 0 ] || echo "  not ok - $missing planned tests never reported"
	errors=$(grep -c . "$OUT_DIR/console-errors.txt" || true)
	if [ "$status" = finished ]; then
		echo "  ok - guest finished"
	else
		echo "  not ok - guest finished: $status"
	fi
	if [ "$errors" = 0 ]; then
		echo "  ok - console shows no kernel error"
	else
		echo "  not ok - console shows $errors kernel error lines:"
		sed -n '1,10s/^/      /p' "$OUT_DIR/console-errors.txt"
	fi
	echo
	echo "stage times (s):"
	awk -F'\t' '{ printf "  %-10s %5s  %s\n", $1, $2, $3 }' "$STAGES_FILE"
	[ "$missing" -gt 0 ] || missing=0
	passed=$((passed + $([ "$status" = finished ] && echo 1 || echo 0) + $([ "$errors" = 0 ] && echo 1 || echo 0)))
	failed=$((failed + missing + $([ "$status" = finished ] && echo 0 || echo 1) + $([ "$errors" = 0 ] && echo 0 || echo 1)))
	echo
	echo "$passed passed, $failed failed, $skipped skipped"
}

stage_done
summarize | tee "$OUT_DIR/results.txt"
tail -1 "$OUT_DIR/results.txt" | grep -q ' 0 failed' || exit 1

#!/bin/bash
# Bisectability and sparse, as TAP:
#   - every prefix of the series (SERIES_UPTO=1..N) builds, and the files it
#     recompiles print no compiler warning (incremental builds: whatever is
#     recompiled is what the prefix changed; a prefix whose last patch
#     changes only tools/ or Documentation/ has the kernel of the prefix
#     before it, which is not built again); a prefix whose last patch adds
#     a selftest program builds it with the tree's own vm/ or mm/ Makefile, without
#     a warning;
#   - sparse (make C=2) on the C files the series touches prints no warning
#     that it does not print on the base.
# Leaves the tree at the full series.
. "$(dirname "$0")/lib.sh"
need_cmd sparse
unset EXTRA_PATCH


# selftest_builds N: the programs the N-th patch adds, built in its tree
# (V=1: 6.12's lib.mk prints "CC prog" lines unless verbose; -s then
# silences the commands, so any output is a warning).
selftest_builds() {
	local vm=$BASE_SELFTESTS progs out scratch
	mapfile -t progs < <(git -C "$SRC_DIR" diff --name-only --diff-filter=A \
		HEAD~1 HEAD -- "$vm" | grep '\.c$' | xargs -r -n1 basename |
		sed 's/\.c$//' | grep -vx uffd-wp-common)
	[ "${#progs[@]}" -gt 0 ] || return 0
	scratch=$(mktemp -d)
	if out=$(make -s -C "$SRC_DIR" O="$OBJ_DIR" ARCH=x86_64 headers 2>&1 &&
		make -s -C "$SRC_DIR/$vm" V=1 top_srcdir="$SRC_DIR" OUTPUT="$scratch" \
			KHDR_INCLUDES="-isystem $OBJ_DIR/usr/include" \
			"${progs[@]/#/$scratch/}" 2>&1) && [ -z "$out" ]; then
		tap_result OK "series@$1 builds ${progs[*]} without warnings"
	else
		tap_result FAIL "series@$1 builds ${progs[*]} without warnings" "$out"
	fi
	rm -rf "$scratch"
}

# kernel_unchanged: the last patch applied touches only tools/ and
# Documentation/, so its kernel is the previous prefix's, byte for byte.
kernel_unchanged() {
	local files
	files=$(git -C "$SRC_DIR" diff --name-only HEAD~1 HEAD) || return 1
	! grep -qvE '^(tools|Documentation)/' <<<"$files"
}

echo "TAP version 13"
total=$(MODE=series "$REPO/scripts/series.sh" --list | grep -c . || true)
prev_ok=0
for i in $(seq 1 "$total"); do
	start=$(date +%s)
	if ! out=$(SERIES_UPTO=$i "$REPO/scripts/series.sh" 2>&1); then
		tap_result FAIL "series@$i applies" "$(echo "$out" | tail -10)"
		prev_ok=0
		continue
	fi
	if [ "$prev_ok" = 1 ] && kernel_unchanged; then
		tap_result OK "series@$i builds without warnings (no kernel source changed: series@$((i - 1))'s build)"
	elif out=$(SERIES_UPTO=$i "$REPO/scripts/kernel.sh" 2>&1); then
		log=$(kernel_out "series@$i")/kernel-build.log
		warn=$(grep 'warning:' "$log" || true)
		if [ -z "$warn" ]; then
			tap_result OK "series@$i builds without warnings ($(($(date +%s) - start))s)"
			prev_ok=1
		else
			tap_result FAIL "series@$i builds without warnings" "$warn"
			prev_ok=0
		fi
	else
		tap_result FAIL "series@$i builds" "$(echo "$out" | tail -10)"
		prev_ok=0
	fi
	selftest_builds "$i"
done

# sparse_of MODE FILE...: sparse's findings, without line numbers.
sparse_of() {
	local mode=$1
	shift
	MODE=$mode "$REPO/scripts/series.sh" >/dev/null
	make -s -C "$SRC_DIR" O="$OBJ_DIR" ARCH=x86_64 C=2 CHECK=sparse "$@" 2>&1 |
		grep -E 'warning:|error:' | sed -E 's/:[0-9]+:[0-9]+:/:/' | sort || true
}
mapfile -t objs < <(git -C "$SRC_DIR" diff --name-only "$BASE_TAG" \
	"$(MODE=series "$REPO/scripts/series.sh" >/dev/null && git -C "$SRC_DIR" rev-parse HEAD)" |
	grep -E '^(mm|fs|kernel|arch)/.*\.c$' | sed 's/\.c$/.o/')
if [ "${#objs[@]}" -gt 0 ]; then
	base=$(sparse_of baseline "${objs[@]}")
	series=$(sparse_of series "${objs[@]}")
	new=$(comm -13 <(echo "$base") <(echo "$series"))
	if [ -z "$new" ]; then
		tap_result OK "sparse: no new warnings in ${objs[*]}"
	else
		tap_result FAIL "sparse: no new warnings in ${objs[*]}" "$new"
	fi
	# The object tree must match the series again for later stages.
	"$REPO/scripts/kernel.sh" >/dev/null 2>&1 || true
fi

tap_end

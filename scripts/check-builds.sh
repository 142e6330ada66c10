#!/bin/bash
# Bisectability and sparse, as TAP:
#   - every prefix of the series (SERIES_UPTO=1..N) builds, and the files it
#     recompiles print no compiler warning (incremental builds: whatever is
#     recompiled is what the prefix changed);
#   - sparse (make C=2) on the C files the series touches prints no warning
#     that it does not print on the base.
# Leaves the tree at the full series.
. "$(dirname "$0")/lib.sh"
need_cmd sparse
unset EXTRA_PATCH


echo "TAP version 13"
total=$(MODE=series "$REPO/scripts/series.sh" --list | grep -c . || true)
for i in $(seq 1 "$total"); do
	start=$(date +%s)
	if out=$(SERIES_UPTO=$i "$REPO/scripts/series.sh" 2>&1 &&
		SERIES_UPTO=$i "$REPO/scripts/kernel.sh" 2>&1); then
		log=$BUILD_DIR/out/series@$i-$(config_name)/kernel-build.log
		warn=$(grep 'warning:' "$log" || true)
		if [ -z "$warn" ]; then
			tap_result OK "series@$i builds without warnings ($(($(date +%s) - start))s)"
		else
			tap_result FAIL "series@$i builds without warnings" "$warn"
		fi
	else
		tap_result FAIL "series@$i builds" "$(echo "$out" | tail -10)"
	fi
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

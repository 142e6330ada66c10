#!/bin/bash
# Patch hygiene of BASE's series, as TAP: patches/BASE/ is what 'make
# patches' makes of the dev branch (when this machine has it); every patch
# is in the series and the series applies; checkpatch.pl --strict (the
# base tree's) and codespell are clean on each patch; the selftest sources
# in tools/testing/selftests/vm/ of this repository are byte-identical to
# what the series adds to the kernel tree (under vm/ on 6.1, mm/ on 6.12);
# every mutant of mutants/BASE/ applies on the series.
. "$(dirname "$0")/lib.sh"
MODE=series EXTRA_PATCH=


echo "TAP version 13"
if git -C "$SRC_DIR" rev-parse -q --verify refs/heads/dev >/dev/null; then
	scratch=$(mktemp -d)
	PATCHES_DIR=$scratch "$REPO/scripts/format-patches.sh" 2>/dev/null
	if d=$(diff -r "$scratch" "$PATCHES"); then
		tap_result OK "patches/$BASE/ is what 'make patches' makes of the dev branch"
	else
		tap_result FAIL "patches/$BASE/ is what 'make patches' makes of the dev branch" \
			"$(echo "$d" | head -20; echo "run 'make patches' (or update the dev branch)")"
	fi
	rm -rf "$scratch"
else
	tap_skip "patches/$BASE/ matches the dev branch" "no dev branch here: patches/$BASE/ is the source"
fi
mapfile -t patches < <("$REPO/scripts/series.sh" --list)
for f in "$PATCHES"/*.patch; do
	[ -e "$f" ] || continue
	case "$(basename "$f")" in *0000-cover-letter.patch) continue ;; esac
	if printf '%s\n' "${patches[@]}" | grep -qxF "$f"; then
		tap_result OK "$(basename "$f") is in patches/$BASE/series"
	else
		tap_result FAIL "$(basename "$f") is in patches/$BASE/series" "not listed: it would never be applied"
	fi
done

if out=$("$REPO/scripts/series.sh" 2>&1); then
	tap_result OK "the series applies to $BASE_TAG"
else
	tap_result FAIL "the series applies to $BASE_TAG" "$(echo "$out" | tail -5)"
fi

for p in "${patches[@]}"; do
	if out=$(codespell "$p" 2>&1); then
		tap_result OK "codespell: $(basename "$p")"
	else
		tap_result FAIL "codespell: $(basename "$p")" "$out"
	fi
	# A subject, then a blank line: else the body runs into the subject.
	subject=$(awk '/^Subject: /{s=1; printf "%s", $0; next}
		s && /^ /{printf "%s", $0; next} {s=0}' "$p" |
		sed -E 's/^Subject: (\[[^]]*\] )?//')
	if [ "${#subject}" -le 75 ]; then
		tap_result OK "subject of at most 75 characters: $(basename "$p")"
	else
		tap_result FAIL "subject of at most 75 characters: $(basename "$p")" \
			"${#subject} characters: ${subject:0:120}..."
	fi
	# UNKNOWN_COMMIT_ID: the tarball has no history to look ids up in.
	# FILE_PATH_CHANGES: asks about MAINTAINERS for any new file; ours are
	# under tools/testing/selftests/{vm,mm}/, covered by MEMORY MANAGEMENT.
	# /usr/bin first: spdxcheck.py needs Debian's python3 with python3-ply.
	out=$(cd "$SRC_DIR" && PATH=/usr/bin:$PATH ./scripts/checkpatch.pl --strict --quiet \
		--ignore UNKNOWN_COMMIT_ID,FILE_PATH_CHANGES "$p" 2>&1 || true)
	if [ -z "$out" ]; then
		tap_result OK "checkpatch --strict: $(basename "$p")"
	else
		tap_result FAIL "checkpatch --strict: $(basename "$p")" "$out"
	fi
done

for f in "$PATCHES"/*0000-cover-letter.patch; do
	[ -e "$f" ] || continue
	if out=$(codespell "$f" 2>&1); then
		tap_result OK "codespell: $(basename "$f")"
	else
		tap_result FAIL "codespell: $(basename "$f")" "$out"
	fi
done

# The selftest programs this project adds must be the same in the
# repository (built against any kernel) and in the series (what is mailed).
vm=$BASE_SELFTESTS
mapfile -t added < <(git -C "$SRC_DIR" diff --name-only --diff-filter=A \
	"$BASE_TAG" series -- "$vm")
for f in "${added[@]}"; do
	[ -f "$OUR_SELFTESTS/$(basename "$f")" ] ||
		tap_result FAIL "$f: the series adds it, the repository lacks it"
done
for f in "$OUR_SELFTESTS"/*; do
	[ -f "$f" ] || continue
	rel=$vm/$(basename "$f")
	if not_in_series "$(basename "$f" .c)"; then
		tap_skip "$rel is identical in the series" "not in the $BASE series (BASE_NOT_IN_SERIES)"
	elif ! git -C "$SRC_DIR" cat-file -e "series:$rel" 2>/dev/null; then
		tap_result FAIL "$rel is in the series" "no patch in patches/$BASE/series adds it"
	elif diff=$(git -C "$SRC_DIR" show "series:$rel" | diff -u - "$f"); then
		tap_result OK "$rel is identical in the series"
	else
		tap_result FAIL "$rel is identical in the series" "$(echo "$diff" | head -20)"
	fi
done

# One way in: on 6.1 kselftest's runner runs each program
# (TEST_GEN_PROGS), run_vmtests.sh does not run it a second time; on 6.12
# the runner runs run_vmtests.sh only, which runs each program
# (TEST_GEN_FILES) once.
for f in "$OUR_SELFTESTS"/*.c; do
	prog=$(basename "$f" .c)
	git -C "$SRC_DIR" show "series:$vm/$prog.c" >/dev/null 2>&1 || continue
	progs=$(git -C "$SRC_DIR" show "series:$vm/Makefile" |
		grep -cx "TEST_GEN_PROGS += $prog" || true)
	files=$(git -C "$SRC_DIR" show "series:$vm/Makefile" |
		grep -cx "TEST_GEN_FILES += $prog" || true)
	vmtests=$(git -C "$SRC_DIR" show "series:$vm/run_vmtests.sh" |
		grep -c "[ /]$prog\b" || true)
	case "$progs $files $vmtests" in
	"1 0 0") tap_result OK "$prog runs once under run_tests (TEST_GEN_PROGS only)" ;;
	"0 1 1") tap_result OK "$prog runs once under run_tests (run_vmtests.sh)" ;;
	"0 0 0") continue ;; # a helper, not a program
	*) tap_result FAIL "$prog runs once under run_tests" \
		"TEST_GEN_PROGS lines: $progs, TEST_GEN_FILES lines: $files, run_vmtests.sh lines: $vmtests" ;;
	esac
done

# A mutant that the matrix stacks on others (a column A+...+NAME) applies
# on those.
# (awk reads to the header and stops: no writer to kill with SIGPIPE,
# which pipefail and set -e would make the end of this script.)
columns=$(awk '!/^[[:space:]]*#/ && NF { print; exit }' "$CONFIGS/matrix.txt" | tr -s ' ' '\n')
for m in "$MUTANTS"/*.patch; do
	[ -e "$m" ] || continue
	col=$(echo "$columns" | grep -E "\+$(basename "$m" .patch)\$" | head -1 || true)
	extra=$m
	[ -z "$col" ] || extra=$(kernel_env "$col" | sed -n 's/^EXTRA_PATCH=//p')
	if out=$(EXTRA_PATCH=$extra "$REPO/scripts/series.sh" 2>&1); then
		tap_result OK "mutant $(basename "$m" .patch) applies on the series"
	else
		tap_result FAIL "mutant $(basename "$m" .patch) applies on the series" "$(echo "$out" | tail -3)"
	fi
done
"$REPO/scripts/series.sh" >/dev/null 2>&1 || true

tap_end

#!/bin/bash
# Stage "series": put the kernel under test into $BUILD_DIR/linux.
#   MODE=baseline            the pristine base alone
#   MODE=series (default)    base + every patch in patches/BASE/series, in order
#   SERIES_UPTO=N            ... only its first N patches (bisection)
#   EXTRA_PATCH='FILE...'    ... + more patches, in order (mutants)
# Each kernel is a branch named after it; a branch whose inputs did not
# change is checked out as is, so the build only sees files that differ.
#
#   series.sh --list         print the patches patches/BASE/series names, in order
. "$(dirname "$0")/lib.sh"

SERIES_FILE=${SERIES_FILE:-$PATCHES/series}

# The series file: one patch file name per line, relative to its directory;
# blank lines and '#' comments are ignored. An empty series is valid.
list_series() {
	local dir line n=0
	dir=$(dirname "$SERIES_FILE")
	[ -f "$SERIES_FILE" ] || die "no series file: $SERIES_FILE"
	while IFS= read -r line || [ -n "$line" ]; do
		n=$((n + 1))
		line=${line%%#*}
		line=$(echo "$line" | xargs)
		[ -n "$line" ] || continue
		case "$line" in
		*" "*) die "$SERIES_FILE:$n: one patch per line: '$line'" ;;
		esac
		[ -f "$dir/$line" ] || die "$SERIES_FILE:$n: patch not found: $line"
		echo "$dir/$line"
	done <"$SERIES_FILE"
}

# apply PATCH: git am it; on failure name the patch and the file that failed.
apply() {
	local out file
	if ! out=$(git am -q --committer-date-is-author-date "$1" 2>&1); then
		file=$(echo "$out" | sed -n 's/^error: patch failed: \([^:]*\):.*/\1/p; s/^error: \(.*\): does not exist in index/\1/p; s/^CONFLICT (content): Merge conflict in \(.*\)/\1/p' | head -1)
		git am --abort >/dev/null 2>&1 || true
		echo "$out" | tail -8 >&2
		die "patch does not apply: $(basename "$1")${file:+ (fails in $file)}"
	fi
	log "applied $(basename "$1")"
}

if [ "${1:-}" = --list ]; then
	list_series
	exit 0
fi

mapfile -t patches < <(list_series)
[ "$MODE" = baseline ] && patches=()
if [ -n "$SERIES_UPTO" ]; then
	[ "$SERIES_UPTO" -le "${#patches[@]}" ] ||
		die "SERIES_UPTO=$SERIES_UPTO, but the series has ${#patches[@]} patches"
	patches=("${patches[@]:0:$SERIES_UPTO}")
fi
if [ -n "$EXTRA_PATCH" ]; then
	for p in $EXTRA_PATCH; do
		[ -f "$p" ] || die "EXTRA_PATCH not found: $p"
		patches+=("$(realpath "$p")")
	done
fi
name=$(kernel_name)

cd "$SRC_DIR" 2>/dev/null && git rev-parse -q --verify "refs/tags/$BASE_TAG" >/dev/null ||
	die "no base tree at $SRC_DIR: run 'make base' first"
export GIT_COMMITTER_NAME="uffd-wp-tlb harness" GIT_COMMITTER_EMAIL=harness@localhost
clear_stale_index_lock
[ -d .git/rebase-apply ] && git am --abort >/dev/null 2>&1
git reset -q --hard
git clean -fdxq

key=$({ echo "$BASE_TAG"; cat "${patches[@]}" /dev/null; } | sha256sum | cut -d' ' -f1)
keyfile=.git/uffd-key-$name
if git rev-parse -q --verify "refs/heads/$name" >/dev/null &&
	[ "$(cat "$keyfile" 2>/dev/null)" = "$key" ]; then
	git checkout -q -f "$name"
	log "reusing branch $name ($(git rev-parse --short HEAD), ${#patches[@]} patches)"
	stage_done "$name: reused"
	exit 0
fi

rm -f "$keyfile"
git checkout -q -f -B "$name" "$BASE_TAG"
log "building branch $name: $BASE_TAG + ${#patches[@]} patches"
for p in "${patches[@]}"; do
	apply "$p"
done
echo "$key" >"$keyfile"
stage_done "$name: ${#patches[@]} patches applied"

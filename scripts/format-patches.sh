#!/bin/bash
# 'make patches': regenerate patches/ and patches/series from the series
# branch of the kernel tree (BRANCH, default "dev"), where patches are
# developed: git format-patch against the base tag, one file per commit.
. "$(dirname "$0")/lib.sh"
BRANCH=${BRANCH:-dev}

git -C "$SRC_DIR" rev-parse -q --verify "refs/heads/$BRANCH" >/dev/null ||
	die "no branch $BRANCH in $SRC_DIR"
rm -f "$REPO"/patches/*.patch
git -C "$SRC_DIR" format-patch -q --zero-commit --no-signature \
	--base="$BASE_TAG" -o "$REPO/patches" "$BASE_TAG..$BRANCH"
{
	echo "# The series, in order: one git format-patch file name per line."
	(cd "$REPO/patches" && ls -- *.patch)
} >"$REPO/patches/series"
log "$(grep -vc '^#' "$REPO/patches/series") patches from $BRANCH ($(git -C "$SRC_DIR" rev-parse --short "$BRANCH"))"

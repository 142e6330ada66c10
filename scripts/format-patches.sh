#!/bin/bash
# 'make patches': regenerate patches/BASE/ and its series file from the series
# branch of the kernel tree (BRANCH, default "dev"), where patches are
# developed: git format-patch against the base tag, one file per commit,
# and the cover letter filled from Documentation/cover-letter-BASE.txt.
#   VERSION       the series version, git format-patch -v (default 3)
#   PATCHES_DIR   where to write (default patches/BASE/; check-patches.sh
#                 regenerates into a scratch dir and compares)
. "$(dirname "$0")/lib.sh"
BRANCH=${BRANCH:-dev}
VERSION=${VERSION:-${BASE_SERIES_VERSION:-3}}
PATCHES_DIR=${PATCHES_DIR:-$PATCHES}
mkdir -p "$PATCHES_DIR"

git -C "$SRC_DIR" rev-parse -q --verify "refs/heads/$BRANCH" >/dev/null ||
	die "no branch $BRANCH in $SRC_DIR"
author=$(git -C "$SRC_DIR" log -1 --format='%an' "$BRANCH")
email=$(git -C "$SRC_DIR" log -1 --format='%ae' "$BRANCH")
rm -f "$PATCHES_DIR"/*.patch
git -C "$SRC_DIR" -c user.name="$author" -c user.email="$email" format-patch -q \
	--cover-letter -v"$VERSION" --subject-prefix="PATCH $BASE" --zero-commit --no-signature \
	--base="$BASE_TAG" -o "$PATCHES_DIR" "$BASE_TAG..$BRANCH"

# Fill the cover letter from its source: the first line is the subject,
# the rest the text. Its date is the last commit's, so that regenerating
# an unchanged branch gives byte-identical files.
cover=$(ls "$PATCHES_DIR"/*0000-cover-letter.patch)
src=$REPO/Documentation/cover-letter-$BASE.txt
date=$(git -C "$SRC_DIR" log -1 --format='%aD' "$BRANCH")
python3 - "$cover" "$src" "$date" <<'PY'
import sys
cover, src, date = sys.argv[1:]
subject, _, blurb = open(src).read().partition("\n")
text = open(cover).read()
text = text.replace("*** SUBJECT HERE ***", subject.strip())
text = text.replace("*** BLURB HERE ***", blurb.strip("\n"))
lines = text.split("\n")
lines = [("Date: " + date) if l.startswith("Date: ") else l for l in lines]
open(cover, "w").write("\n".join(lines))
PY
{
	echo "# The series, in order: one git format-patch file name per line."
	(cd "$PATCHES_DIR" && ls -- *.patch | grep -v '0000-cover-letter')
} >"$PATCHES_DIR/series"
log "$(grep -vc '^#' "$PATCHES_DIR/series") patches + cover letter from $BRANCH ($(git -C "$SRC_DIR" rev-parse --short "$BRANCH"))"

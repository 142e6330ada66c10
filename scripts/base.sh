#!/bin/bash
# Stage "base": fetch the Debian linux-source package of BASE at its pinned
# version,
# verify both pinned checksums (configs/BASE/base.env; fetch_pinned in lib.sh),
# and make $BUILD_DIR/linux a git tree whose first commit is the pristine
# tarball, tagged $BASE_TAG. Reused while the tarball's checksum matches
# the pin.
. "$(dirname "$0")/lib.sh"

stamp=$SRC_DIR/.git/uffd-base-sha256
tarball=$(fetch_pinned "$BASE_PACKAGE" "$BASE_VERSION" "$BASE_DEB_SHA256" \
	"$BASE_TARBALL" "$BASE_TARBALL_SHA256" "configs/$BASE/base.env")

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$BASE_TARBALL_SHA256" ] &&
	git -C "$SRC_DIR" rev-parse -q --verify "refs/tags/$BASE_TAG" >/dev/null; then
	log "reusing $SRC_DIR at $BASE_TAG"
	stage_done reused
	exit 0
fi

log "unpacking into $SRC_DIR"
rm -rf "$SRC_DIR" "$SRC_DIR.tmp"
mkdir -p "$SRC_DIR.tmp"
tar -xJf "$tarball" -C "$SRC_DIR.tmp"
mv "$SRC_DIR.tmp"/* "$SRC_DIR"
rmdir "$SRC_DIR.tmp"

log "committing the pristine base"
cd "$SRC_DIR"
git init -q
# The tarball's .gitignore ends with Debian's "/*" rule, which hides the
# whole top level: add with -f so the base commit is the complete tarball.
git add -A -f
# A fixed identity and date make the base commit id reproducible, so the
# series' base-commit: line means the same tree on every machine.
GIT_AUTHOR_NAME="Debian $BASE_PACKAGE" GIT_AUTHOR_EMAIL=debian-kernel@lists.debian.org \
GIT_COMMITTER_NAME="Debian $BASE_PACKAGE" GIT_COMMITTER_EMAIL=debian-kernel@lists.debian.org \
GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
	git commit -q --no-verify -m "$BASE_PACKAGE $BASE_VERSION (pristine)" \
		-m "sha256 of $BASE_TARBALL: $BASE_TARBALL_SHA256"
git tag -f "$BASE_TAG" >/dev/null
echo "$BASE_TARBALL_SHA256" >"$stamp"
log "base commit $(git rev-parse --short HEAD), tagged $BASE_TAG"
stage_done unpacked

#!/bin/bash
# Stage "base": fetch Debian's linux-source-6.1 at the pinned version, verify
# both pinned checksums, and make $BUILD_DIR/linux a git tree whose first
# commit is the pristine tarball, tagged $BASE_TAG. Reused while the
# tarball's checksum matches the pin.
. "$(dirname "$0")/lib.sh"

deb=$DL_DIR/${BASE_PACKAGE}_${BASE_VERSION}_all.deb
tarball=$DL_DIR/$(basename "$BASE_TARBALL")
stamp=$SRC_DIR/.git/uffd-base-sha256

# verify FILE SHA256: on a mismatch the file is moved aside, never used.
verify() {
	local got
	got=$(sha256sum "$1" | cut -d' ' -f1)
	if [ "$got" != "$2" ]; then
		mv -f "$1" "$1.bad"
		die "checksum mismatch for $(basename "$1"):
  expected $2 (configs/base.env)
  got      $got
  moved aside to $1.bad; nothing was unpacked or built"
	fi
	log "sha256 ok: $(basename "$1")"
}

mkdir -p "$DL_DIR"
if [ ! -f "$tarball" ]; then
	if [ ! -f "$deb" ]; then
		need_cmd apt-get
		log "downloading $BASE_PACKAGE=$BASE_VERSION"
		(cd "$DL_DIR" && apt-get download "$BASE_PACKAGE=$BASE_VERSION") ||
			die "apt-get download $BASE_PACKAGE=$BASE_VERSION failed (run 'apt-get update'? is the version still in the archive?)"
	fi
	verify "$deb" "$BASE_DEB_SHA256"
	log "extracting $BASE_TARBALL from $(basename "$deb")"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO "./$BASE_TARBALL" >"$tarball.part" ||
		die "$BASE_TARBALL not found in $(basename "$deb")"
	mv "$tarball.part" "$tarball"
fi
verify "$tarball" "$BASE_TARBALL_SHA256"

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

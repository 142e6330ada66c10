#!/bin/bash
# Stage "upstream-tests" (run by the selftests stage): the 6.12 tree's
# userfaultfd tests, uffd-unit-tests and uffd-stress, built statically for
# the 6.1 guest (BASE=6.1 only). Their sources come from Debian's
# linux-source-6.12 (the pin of configs/6.12/base.env); they compile
# against the 6.1 tree's uapi headers with upstream-tests/uapi-after-6.1.h
# force-included, using the 6.12 tree's own mm Makefile. Written by people
# outside this project, they are in every kernel's initramfs; 'make
# matrix' and 'make regress' run them (configs/6.1/upstream-tests.txt). Built
# once per pin and compat header, into $BUILD_DIR/upstream-tests/bin.
. "$(dirname "$0")/lib.sh"
[ -n "${UPSTREAM_TESTS_BASE:-}" ] || die "BASE=$BASE runs its own tree's userfaultfd tests"
pin=configs/$UPSTREAM_TESTS_BASE/base.env
read -r UPSTREAM_PACKAGE UPSTREAM_VERSION UPSTREAM_DEB_SHA256 UPSTREAM_TARBALL \
	UPSTREAM_TARBALL_SHA256 < <(. "$REPO/$pin" && echo "$BASE_PACKAGE" "$BASE_VERSION" \
	"$BASE_DEB_SHA256" "$BASE_TARBALL" "$BASE_TARBALL_SHA256")
need_cmd gcc make tar

progs=(uffd-unit-tests uffd-stress)
dir=$BUILD_DIR/upstream-tests
compat=$REPO/upstream-tests/uapi-after-6.1.h
[ -f "$OBJ_DIR/usr/include/linux/userfaultfd.h" ] || die "no uapi headers in $OBJ_DIR/usr/include: run the selftests stage"
# Rebuilt when the pin, the compat header or 6.1's uapi headers change.
key=$({ echo "$UPSTREAM_TARBALL_SHA256"; cat "$compat" "$OBJ_DIR"/usr/include/linux/userfaultfd.h; } |
	sha256sum | cut -d' ' -f1)
if [ "$(cat "$dir/bin/.key" 2>/dev/null)" = "$key" ]; then
	log "reusing ${progs[*]} in $dir/bin"
	stage_done reused
	exit 0
fi
tarball=$(fetch_pinned "$UPSTREAM_PACKAGE" "$UPSTREAM_VERSION" "$UPSTREAM_DEB_SHA256" \
	"$UPSTREAM_TARBALL" "$UPSTREAM_TARBALL_SHA256" "$pin")
top=${UPSTREAM_PACKAGE}
log "extracting the 6.12 selftests from $(basename "$tarball")"
rm -rf "$dir"
mkdir -p "$dir/src" "$dir/bin"
tar -xJf "$tarball" -C "$dir/src" --strip-components=1 \
	"$top/tools/testing/selftests" "$top/tools/include" "$top/mm/gup_test.h" ||
	die "the 6.12 selftests are not in $(basename "$tarball")"

log "building ${progs[*]} against 6.1's uapi headers and $(basename "$compat")"
mm=$dir/src/tools/testing/selftests/mm
if ! make -C "$mm" top_srcdir="$dir/src" OUTPUT="$dir/bin" LDFLAGS=-static \
	KHDR_INCLUDES="-isystem $OBJ_DIR/usr/include -include $compat" \
	"${progs[@]/#/$dir/bin/}" >"$dir/build.log" 2>&1; then
	tail -30 "$dir/build.log" >&2
	die "building the 6.12 tests failed (log: $dir/build.log)"
fi
for p in "${progs[@]}"; do
	file "$dir/bin/$p" | grep -q 'statically linked' || die "$p is not statically linked"
done
echo "$key" >"$dir/bin/.key"
stage_done "${progs[*]} of $UPSTREAM_PACKAGE $UPSTREAM_VERSION"

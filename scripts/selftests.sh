#!/bin/bash
# Stage "selftests": build the test programs the guest runs, statically
# linked, against the kernel tree's own uapi headers:
#   - the tree's tools/testing/selftests/vm/userfaultfd;
#   - this project's regression cases from tools/testing/selftests/vm/ of
#     the repository (the same files the series adds), so that the baseline
#     and every mutant run the very same test binaries as the series;
#   - the benchmarks in bench/ (not part of the series);
#   - the 6.12 tree's uffd-unit-tests and uffd-stress (upstream-tests.sh).
. "$(dirname "$0")/lib.sh"
need_cmd gcc make

tree_tests=(userfaultfd)
mapfile -t our_tests < <(cd "$REPO/tools/testing/selftests/vm" 2>/dev/null &&
	ls -- *.c 2>/dev/null | sed 's/\.c$//' | grep -vx uffd-wp-common)
mapfile -t benches < <(cd "$REPO/bench" 2>/dev/null &&
	ls -- *.c 2>/dev/null | sed 's/\.c$//')

log "installing uapi headers of $(kernel_name) into $OBJ_DIR/usr/include"
make -s -C "$SRC_DIR" O="$OBJ_DIR" ARCH=x86_64 headers >"$OUT_DIR/headers.log" 2>&1 ||
	{ tail -20 "$OUT_DIR/headers.log" >&2; die "make headers failed"; }

# A private copy of the tree's selftests dir with our sources laid over
# it: the tree's Makefile rules and headers, our test programs.
work=$OUT_DIR/selftests-src
bin=$OUT_DIR/selftests
rm -rf "$work" "$bin"
mkdir -p "$work" "$bin"
cp -r "$SRC_DIR/tools/testing/selftests/." "$work/"
for dir in "$REPO/tools/testing/selftests/vm" "$REPO/bench"; do
	if compgen -G "$dir/*.[ch]" >/dev/null; then
		cp "$dir"/*.[ch] "$work/vm/"
	fi
done
# The base's Makefile does not know our programs: link them with their
# helpers as the series' Makefile does (the benchmarks too).
for t in "${our_tests[@]}" "${benches[@]}"; do
	grep -q "^\$(OUTPUT)/$t:" "$work/vm/Makefile" ||
		echo "\$(OUTPUT)/$t: uffd-wp-common.c vm_util.c" >>"$work/vm/Makefile"
done

log "building ${tree_tests[*]} ${our_tests[*]} ${benches[*]}"
if ! make -C "$work/vm" top_srcdir="$SRC_DIR" OUTPUT="$bin" \
	KHDR_INCLUDES="-isystem $OBJ_DIR/usr/include" LDFLAGS=-static \
	"${tree_tests[@]/#/$bin/}" "${our_tests[@]/#/$bin/}" "${benches[@]/#/$bin/}" \
	>"$OUT_DIR/selftests-build.log" 2>&1; then
	tail -30 "$OUT_DIR/selftests-build.log" >&2
	die "selftests build failed (log: $OUT_DIR/selftests-build.log)"
fi
for t in "${tree_tests[@]}" "${our_tests[@]}" "${benches[@]}"; do
	file "$bin/$t" | grep -q 'statically linked' || die "$t is not statically linked"
done
"$REPO/scripts/upstream-tests.sh"
cp "$BUILD_DIR"/upstream-tests/bin/* "$bin/"
stage_done "${#tree_tests[@]} tree + ${#our_tests[@]} project tests + ${#benches[@]} benchmarks + 6.12's uffd tests"

#!/bin/bash
# Stage "selftests": build the test programs the guest runs, statically
# linked, against the kernel tree's own uapi headers:
#   - the tree's userfaultfd tests (BASE_TREE_TESTS: vm/userfaultfd on 6.1,
#     mm/uffd-unit-tests and mm/uffd-stress on 6.12);
#   - this project's regression cases from tools/testing/selftests/vm/ of
#     the repository (the same files the series adds), so that the baseline
#     and every mutant run the very same test binaries as the series;
#   - the benchmarks in bench/ (not part of the series);
#   - on 6.1, the 6.12 tree's uffd-unit-tests and uffd-stress
#     (upstream-tests.sh).
. "$(dirname "$0")/lib.sh"
need_cmd gcc make

read -r -a tree_tests <<<"$BASE_TREE_TESTS"
mapfile -t our_tests < <(cd "$OUR_SELFTESTS" 2>/dev/null &&
	ls -- *.c 2>/dev/null | sed 's/\.c$//' | grep -vx uffd-wp-common |
	while read -r t; do not_in_series "$t" || echo "$t"; done)
mapfile -t benches < <(cd "$REPO/bench" 2>/dev/null &&
	ls -- *.c 2>/dev/null | sed 's/\.c$//')

log "installing uapi headers of $(kernel_name) into $OBJ_DIR/usr/include"
make -s -C "$SRC_DIR" O="$OBJ_DIR" ARCH=x86_64 headers >"$OUT_DIR/headers.log" 2>&1 ||
	{ tail -20 "$OUT_DIR/headers.log" >&2; die "make headers failed"; }

# A private copy of the tree's selftests dir with our sources laid over
# it: the tree's Makefile rules and headers, our test programs.
# Laid out as in the tree: 6.12's tests include ../../../../mm/gup_test.h.
work=$OUT_DIR/selftests-src
bin=$OUT_DIR/selftests
mm=$work/$BASE_SELFTESTS
rm -rf "$work" "$bin"
mkdir -p "$work/tools/testing" "$work/mm" "$bin"
cp -r "$SRC_DIR/tools/testing/selftests" "$work/tools/testing/"
cp "$SRC_DIR/mm/gup_test.h" "$work/mm/"
for dir in "$OUR_SELFTESTS" "$REPO/bench"; do
	if compgen -G "$dir/*.[ch]" >/dev/null; then
		cp "$dir"/*.[ch] "$mm/"
	fi
done
# The base's Makefile does not know our programs: link them with their
# helpers as the series' Makefile does (the benchmarks too).
for t in "${our_tests[@]}" "${benches[@]}"; do
	grep -q "^\$(OUTPUT)/$t:" "$mm/Makefile" ||
		echo "\$(OUTPUT)/$t: uffd-wp-common.c vm_util.c" >>"$mm/Makefile"
done

log "building ${tree_tests[*]} ${our_tests[*]} ${benches[*]}"
if ! make -C "$mm" top_srcdir="$SRC_DIR" OUTPUT="$bin" \
	KHDR_INCLUDES="-isystem $OBJ_DIR/usr/include" LDFLAGS=-static \
	"${tree_tests[@]/#/$bin/}" "${our_tests[@]/#/$bin/}" "${benches[@]/#/$bin/}" \
	>"$OUT_DIR/selftests-build.log" 2>&1; then
	tail -30 "$OUT_DIR/selftests-build.log" >&2
	die "selftests build failed (log: $OUT_DIR/selftests-build.log)"
fi
for t in "${tree_tests[@]}" "${our_tests[@]}" "${benches[@]}"; do
	file "$bin/$t" | grep -q 'statically linked' || die "$t is not statically linked"
done
upstream=
if [ -n "${UPSTREAM_TESTS_BASE:-}" ]; then
	"$REPO/scripts/upstream-tests.sh"
	cp "$BUILD_DIR"/upstream-tests/bin/* "$bin/"
	upstream=" + the uffd tests of $UPSTREAM_TESTS_BASE"
fi
stage_done "${#tree_tests[@]} tree + ${#our_tests[@]} project tests + ${#benches[@]} benchmarks$upstream"

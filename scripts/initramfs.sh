#!/bin/bash
# Stage "initramfs": busybox-static, guest/init, the test programs and the
# list of tests to run (configs/BASE/tests.txt, filtered by TESTS), packed with
# the tree's own gen_init_cpio so no root or mknod is needed.
#   TESTS       space-separated names or shell globs from configs/BASE/tests.txt
#               (default: all)
#   TESTS_FILE  the tests files, space-separated (default configs/BASE/tests.txt)
#   GUEST_PROGS a directory of more programs and scripts for /kselftest/vm
#               (or mm on 6.12)
#               (make regress: the base tree's whole vm suite)
. "$(dirname "$0")/lib.sh"
need_cmd gcc gzip

BUSYBOX=${BUSYBOX:-/bin/busybox}
BASH_STATIC=${BASH_STATIC:-/bin/bash-static}
GUEST_PROGS=${GUEST_PROGS:-}
TESTS_FILE=${TESTS_FILE:-$CONFIGS/tests.txt}
TESTS=${TESTS:-*}

file "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
	die "$BUSYBOX is not a static busybox: run 'make deps' (busybox-static)"
file "$BASH_STATIC" 2>/dev/null | grep -q 'statically linked' ||
	die "$BASH_STATIC is not a static bash: run 'make deps' (bash-static)"
[ -z "$GUEST_PROGS" ] || [ -d "$GUEST_PROGS" ] || die "GUEST_PROGS: no directory $GUEST_PROGS"
for f in $TESTS_FILE; do
	[ -f "$f" ] || die "TESTS_FILE: no file $f"
done
[ -d "$OUT_DIR/selftests" ] || die "no test programs: run the selftests stage first"

# select_tests: the lines of the tests files whose name matches $TESTS.
select_tests() {
	local name rest pat
	local -
	set -f # $TESTS holds patterns, not file names
	# shellcheck disable=SC2086 # TESTS_FILE: a list of files
	while read -r name rest; do
		case "$name" in '' | '#'*) continue ;; esac
		for pat in $TESTS; do
			# shellcheck disable=SC2053
			if [[ "$name" == $pat ]]; then
				echo "$name $rest"
				break
			fi
		done
	done < <(cat $TESTS_FILE)
}

stage=$OUT_DIR/initramfs
rm -rf "$stage"
mkdir -p "$stage"
select_tests >"$stage/tests.txt"
[ -s "$stage/tests.txt" ] || die "TESTS='$TESTS' matches nothing in $TESTS_FILE"

gen=$OBJ_DIR/usr/gen_init_cpio
if [ ! -x "$gen" ]; then
	mkdir -p "$(dirname "$gen")"
	gcc -O2 -o "$gen" "$SRC_DIR/usr/gen_init_cpio.c"
fi

# The test programs sit where kselftest's runner expects them, beside the
# tree's vm/settings or mm/settings (their timeout) and kselftest/runner.sh;
# /selftests points to that directory.
sdir=/kselftest/$(basename "$BASE_SELFTESTS")
{
	for d in /bin /etc /usr /usr/bin /dev /proc /sys /tmp /mnt /mnt/huge \
		/kselftest /kselftest/kselftest "$sdir"; do
		echo "dir $d 0755 0 0"
	done
	echo "slink /selftests $sdir 0777 0 0"
	# runner.sh sources ktap_helpers.sh from 6.14 on.
	for f in runner.sh ktap_helpers.sh; do
		[ ! -f "$SRC_DIR/tools/testing/selftests/kselftest/$f" ] ||
			echo "file /kselftest/kselftest/$f $SRC_DIR/tools/testing/selftests/kselftest/$f 0644 0 0"
	done
	echo "file $sdir/settings $SRC_DIR/$BASE_SELFTESTS/settings 0644 0 0"
	echo "file /bin/run-kselftest $REPO/guest/run-kselftest 0755 0 0"
	echo "file /bin/run-vmtests $REPO/guest/run-vmtests 0755 0 0"
	echo "file /usr/bin/timeout $REPO/guest/timeout 0755 0 0"
	echo "file /bin/sudo $REPO/guest/sudo 0755 0 0"
	echo "file /bin/bash $BASH_STATIC 0755 0 0"
	echo "file /etc/passwd $REPO/guest/passwd 0644 0 0"
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "nod /dev/null 0666 0 0 c 1 3"
	echo "file /bin/busybox $BUSYBOX 0755 0 0"
	for applet in $("$BUSYBOX" --list); do
		[ "$applet" = busybox ] || echo "slink /bin/$applet busybox 0777 0 0"
	done
	echo "file /init $REPO/guest/init 0755 0 0"
	echo "file /tests.txt $stage/tests.txt 0644 0 0"
	# GUEST_PROGS win over the kernel's own builds of the same name: make
	# regress runs the very same binaries on every kernel.
	for t in "$OUT_DIR"/selftests/* ${GUEST_PROGS:+"$GUEST_PROGS"/*}; do
		[ -f "$t" ] && [ -x "$t" ] &&
			echo "file $sdir/$(basename "$t") $t 0755 0 0"
	done | awk '{ last[$2] = $0; if (!($2 in seen)) { seen[$2] = 1; order[n++] = $2 } }
		END { for (i = 0; i < n; i++) print last[order[i]] }'
} >"$stage/cpio.list"

"$gen" "$stage/cpio.list" | gzip -1 >"$OUT_DIR/initramfs.cpio.gz"
log "$(wc -l <"$stage/tests.txt") tests: $(cut -d' ' -f1 "$stage/tests.txt" | xargs)"
stage_done "$(du -h "$OUT_DIR/initramfs.cpio.gz" | cut -f1)"

#!/bin/bash
# The harness' own tests, for what can be tested without building a kernel:
# argument handling, checksum refusal, series parsing and application, TAP
# parsing, console error detection, the results summary. TAP output; the
# last line is "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
S=$REPO/scripts
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export BUILD_DIR=$T/build
unset MODE EXTRA_PATCH SERIES_UPTO DEBUG TESTS

n=0 failed=0
# check NAME EXPECTED_RC OUTPUT_REGEX -- CMD...: run CMD, check its exit
# status and that its output (stdout+stderr) matches the regex.
check() {
	local name=$1 want_rc=$2 re=$3 out rc
	shift 4
	n=$((n + 1))
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" = "$want_rc" ] && echo "$out" | grep -qE -- "$re"; then
		echo "ok $n $name"
	else
		echo "not ok $n $name"
		echo "# want rc=$want_rc and /$re/, got rc=$rc:"
		echo "$out" | tail -8 | sed 's/^/#   /'
		failed=$((failed + 1))
	fi
}

echo "TAP version 13"

# --- argument handling
check "MODE must be baseline or series" 1 "MODE must be baseline or series, not 'bogus'" -- \
	env MODE=bogus "$S/series.sh" --list
check "EXTRA_PATCH needs MODE=series" 1 "EXTRA_PATCH needs MODE=series" -- \
	env MODE=baseline EXTRA_PATCH=x.patch "$S/series.sh" --list
check "ACCEL must be tcg or kvm" 1 "ACCEL must be tcg or kvm" -- \
	bash -c "mkdir -p $BUILD_DIR/out/6.1/series-guest && touch $BUILD_DIR/out/6.1/series-guest/{bzImage,initramfs.cpio.gz} && ACCEL=xen $S/qemu.sh"
check "qemu without a kernel says which stage to run" 1 "run the kernel stage first" -- \
	env BUILD_DIR="$T/empty" "$S/qemu.sh"
check "qemu: KVM asked for but absent falls back to TCG, and says so" 1 \
	"KVM asked for, but /nonexistent/kvm is absent or not writable: falling back to TCG" -- \
	env BUILD_DIR="$T/empty" ACCEL=kvm KVM_DEV=/nonexistent/kvm "$S/qemu.sh"

# --- series parsing
mkdir -p "$T/p"
printf 'From x\n' >"$T/p/0001-a.patch"
printf 'From y\n' >"$T/p/0002-b.patch"
printf '# comment\n\n0001-a.patch\n  0002-b.patch  # trailing comment\n' >"$T/p/series"
check "series: order kept, comments and blanks ignored" 0 "0001-a.patch.*0002-b.patch$" -- \
	bash -c "SERIES_FILE=$T/p/series $S/series.sh --list | xargs -n1 basename | xargs"
printf '' >"$T/p/empty"
check "series: an empty series is valid" 0 "^$" -- \
	env SERIES_FILE="$T/p/empty" "$S/series.sh" --list
printf '0001-a.patch\n0003-missing.patch\n' >"$T/p/bad"
check "series: a missing patch is named with its line" 1 "bad:2: patch not found: 0003-missing.patch" -- \
	env SERIES_FILE="$T/p/bad" "$S/series.sh" --list
printf '0001-a.patch 0002-b.patch\n' >"$T/p/two"
check "series: two patches on one line are refused" 1 "one patch per line" -- \
	env SERIES_FILE="$T/p/two" "$S/series.sh" --list

# --- series application, on a small stand-in for the kernel tree
check "BASE: an unknown base is refused, the known ones named" 1 \
	"BASE must be one of: 6.1 6.12 7.3, not '7'" -- env BASE=7 "$S/base.sh"
# --- the private apt configuration of suites the machine does not list
mkdir -p "$T/apt/sources.list.d" "$T/apt1/sources.list.d" "$T/apt0/sources.list.d"
printf 'Types: deb\nURIs: http://sec.example/debian-security\nSuites: trixie-security\n\nTypes: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\n' \
	>"$T/apt/sources.list.d/debian.sources"
echo 'deb [arch=amd64] http://list.example/debian trixie main' >"$T/apt1/sources.list"
for d in apt apt1 apt0; do
	got=$(APT_ETC=$T/$d OS_CODENAME=trixie BASE=7.3 bash -c ". '$S/lib.sh'; debian_mirror" 2>&1)
	echo "$got" >"$T/$d.out"
done
check "apt: the mirror is the machine's source of its release (deb822)" 0 \
	"^http://mirror.example/debian$" -- cat "$T/apt.out"
check "apt: the mirror is the machine's source of its release (one-line)" 0 \
	"^http://list.example/debian$" -- cat "$T/apt1.out"
check "apt: no source of the release is a clear error" 0 \
	"no apt source for Debian 'trixie' in .*apt0: cannot reach suite" -- cat "$T/apt0.out"
check "apt: a pinned suite gets its own configuration, the machine's is untouched" 0 \
	"^deb \[signed-by=[^]]*\] http://mirror.example/debian experimental main$" -- bash -c \
	"APT_ETC='$T/apt' OS_CODENAME=trixie BASE=7.3 bash -c \". '$S/lib.sh'; apt_suite experimental true\" &&
	 cat '$BUILD_DIR/apt/experimental/sources.list'"
check "BASE_NOT_IN_SERIES: a mainline-only test is not in a backport" 0 \
	"^yes no$" -- env BASE=6.12 bash -c \
	". '$S/lib.sh'; not_in_series uffd-rwp-fence && echo -n 'yes '; not_in_series uffd-wp-race || echo no"
check "BASE: each base has its own tree, objects and results" 0 \
	"linux-6.12 obj/6.12-guest out/6.12/series-guest" -- env BASE=6.12 bash -c \
	". '$S/lib.sh'; echo \${SRC_DIR#\$BUILD_DIR/} \${OBJ_DIR#\$BUILD_DIR/} \${OUT_DIR#\$BUILD_DIR/}"
. "$REPO/configs/6.1/base.env"
tree=$BUILD_DIR/linux-6.1
mkdir -p "$tree/mm"
printf 'int b;\n%.0s' {1..13} >"$tree/mm/foo.c"
sed -i '1s/.*/int a;/; 7s/.*/int c;/' "$tree/mm/foo.c"
git -C "$tree" init -q
git -C "$tree" add -A
git -C "$tree" -c user.name=t -c user.email=t@t commit -qm base
git -C "$tree" tag "$BASE_TAG"
mk_patch() { # mk_patch OUT SED-EXPR MESSAGE: a patch of mm/foo.c
	git -C "$tree" checkout -q -B tmp "$BASE_TAG"
	sed -i "$2" "$tree/mm/foo.c"
	git -C "$tree" -c user.name=t -c user.email=t@t commit -qam "$3"
	git -C "$tree" format-patch -q -1 --stdout >"$1"
	git -C "$tree" checkout -q -f "$BASE_TAG"
	git -C "$tree" branch -qD tmp
}
mkdir -p "$T/s"
mk_patch "$T/s/0001-mm-b.patch" '1s/int a;/long b;/' "mm: b"
mk_patch "$T/s/0002-mm-c.patch" 's/int c;/long c;/' "mm: c"
mk_patch "$T/s/0003-mm-conflict.patch" '1s/int a;/short b;/' "mm: conflict"
printf '0001-mm-b.patch\n0002-mm-c.patch\n' >"$T/s/series"
check "series: patches applied in order" 0 "2 patches applied" -- \
	env SERIES_FILE="$T/s/series" "$S/series.sh"
check "series: the tree holds both patches" 0 "long b;.*long c;" -- \
	bash -c "tr '\n' ' ' <$tree/mm/foo.c"
check "series: an unchanged series is reused" 0 "reusing branch series" -- \
	env SERIES_FILE="$T/s/series" "$S/series.sh"
check "baseline: the pristine base" 0 "baseline: 0 patches applied" -- \
	env SERIES_FILE="$T/s/series" MODE=baseline "$S/series.sh"
check "baseline: tree back at the base" 0 "^int a;" -- cat "$tree/mm/foo.c"
check "SERIES_UPTO: only the first patches" 0 "series@1: 1 patches applied" -- \
	env SERIES_FILE="$T/s/series" SERIES_UPTO=1 "$S/series.sh"
check "SERIES_UPTO: the tree holds the first patch only" 0 "^long b;.*int c;" -- \
	bash -c "tr '\n' ' ' <$tree/mm/foo.c"
check "SERIES_UPTO: beyond the series is an error" 1 "SERIES_UPTO=3, but the series has 2 patches" -- \
	env SERIES_FILE="$T/s/series" SERIES_UPTO=3 "$S/series.sh"
check "SERIES_UPTO must be a number" 1 "SERIES_UPTO must be a number" -- \
	env SERIES_UPTO=x "$S/series.sh" --list
check "extra patch: a conflict names the patch and the file" 1 \
	"patch does not apply: 0003-mm-conflict.patch \(fails in mm/foo.c\)" -- \
	env SERIES_FILE="$T/s/series" EXTRA_PATCH="$T/s/0003-mm-conflict.patch" "$S/series.sh"
check "extra patch: the failed am left no state behind" 0 "^$" -- \
	bash -c "ls -d $tree/.git/rebase-apply 2>/dev/null; true"
mk_patch "$T/s/0004-mm-d.patch" '12s/int b;/char d;/' "mm: d"
printf '0001-mm-b.patch\n' >"$T/s/series1"
check "extra patches: stacked in order, named after each" 0 \
	"series\+0002-mm-c\+0004-mm-d: 3 patches applied" -- \
	env SERIES_FILE="$T/s/series1" EXTRA_PATCH="$T/s/0002-mm-c.patch $T/s/0004-mm-d.patch" "$S/series.sh"
check "extra patches: the tree holds all three" 0 "^long b;.*long c;.*char d;" -- \
	bash -c "tr '\n' ' ' <$tree/mm/foo.c"
check "extra patches: a missing one is named" 1 "EXTRA_PATCH not found: $T/s/none.patch" -- \
	env SERIES_FILE="$T/s/series1" EXTRA_PATCH="$T/s/0002-mm-c.patch $T/s/none.patch" "$S/series.sh"
touch "$tree/.git/index.lock"
check "series: a git index.lock a stopped run left is removed" 0 \
	"removing .*index.lock, left by a run that was stopped" -- \
	env SERIES_FILE="$T/s/series1" "$S/series.sh"
printf '0003-mm-conflict.patch\n0001-mm-b.patch\n' >"$T/s/series2"
check "series: a later patch that does not apply is named" 1 \
	"patch does not apply: 0001-mm-b.patch \(fails in mm/foo.c\)" -- \
	env SERIES_FILE="$T/s/series2" "$S/series.sh"

# --- checksum refusal: a tarball or .deb that is not the pinned one
mkdir -p "$BUILD_DIR/dl"
rm -rf "$tree"
echo "not the kernel" | xz >"$BUILD_DIR/dl/linux-source-6.1.tar.xz"
check "base: a tarball with the wrong sha256 is refused" 1 \
	"checksum mismatch for linux-source-6.1.tar.xz" -- "$S/base.sh"
check "base: nothing was unpacked" 0 "^$" -- bash -c "ls -d $tree 2>/dev/null; true"
check "base: the bad tarball was moved aside, not lost" 0 "tar.xz.bad" -- ls "$BUILD_DIR/dl"
echo "not a deb" >"$BUILD_DIR/dl/${BASE_PACKAGE}_${BASE_VERSION}_all.deb"
check "base: a .deb with the wrong sha256 is refused" 1 \
	"checksum mismatch for ${BASE_PACKAGE}_${BASE_VERSION}_all.deb" -- "$S/base.sh"

# --- console parsing
cat >"$T/console.log" <<'EOF'
[    0.000000] Linux version 6.1.192
uffd-harness: start 6.1.192 4 cpus
TAP version 13
1..4
# running a: a
# ok 1 fixture.anon.test
# WARNING: printed by a test, not by the kernel
ok 1 a # 3s
not ok 2 b # exit=1 2s
ok 3 c # SKIP 0s
ok 4 d # 1s
uffd-harness: end done
EOF
check "tap: top-level results only" 0 "^4$" -- bash -c "$S/console.sh tap $T/console.log | wc -l"
check "tap: count passed failed skipped" 0 "^2 1 1$" -- "$S/console.sh" count "$T/console.log"
check "console: a user line saying WARNING is no kernel error" 0 "^$" -- \
	"$S/console.sh" errors "$T/console.log"
for e in "Kernel panic - not syncing: sysrq triggered crash" \
	"WARNING: CPU: 1 PID: 42 at mm/memory.c:3301 do_wp_page+0x1/0x2" \
	"BUG: kernel NULL pointer dereference, address: 0000000000000008" \
	"Oops: 0002 [#1] PREEMPT SMP" "kernel BUG at mm/huge_memory.c:1800!" \
	"BUG: KASAN: use-after-free in change_pte_range" \
	"WARNING: possible circular locking dependency detected"; do
	printf '[    1.234567] %s\n' "$e" >"$T/err.log"
	check "console: detects '${e:0:40}'" 0 "${e:0:10}" -- "$S/console.sh" errors "$T/err.log"
done

# --- results summary of a fake run
out=$BUILD_DIR/out/6.1/series-guest
mkdir -p "$out/initramfs"
cp "$T/console.log" "$out/console.log"
printf 'a 1 a\nb 1 b\nc 1 c\nd 1 d\ne 1 e\n' >"$out/initramfs/tests.txt"
printf 'accel=tcg\nstatus=finished\npassed=2\nfailed=1\nskipped=1\n' >"$out/guest.txt"
: >"$out/console-errors.txt"
printf 'kernel\t42\tx\n' >"$out/stages.tsv"
check "results: a missing test and a failure are counted" 1 "4 passed, 2 failed, 1 skipped$" -- \
	"$S/results.sh"
check "results: every test is listed, subtests indented" 0 "      ok 1 fixture.anon.test" -- \
	cat "$out/results.txt"
check "results: stage times are shown" 0 "kernel +42" -- cat "$out/results.txt"

# --- initramfs test selection
mkdir -p "$out/selftests"
check "initramfs: TESTS matching nothing is an error" 1 "TESTS='nomatch' matches nothing" -- \
	env TESTS=nomatch "$S/initramfs.sh"
check "initramfs: a GUEST_PROGS that is no directory is an error" 1 "GUEST_PROGS: no directory $T/none" -- \
	env GUEST_PROGS="$T/none" "$S/initramfs.sh"

# --- make regress: verdicts compared test by test, from fake consoles
vm_log() { # vm_log VERDICT-OF-MREMAP|- VERDICT-OF-WP-FORK: a guest console
	vm_test() { # vm_test CMD START END VERDICT [OUTPUT]: as run_test() prints it
		local title="running $1"
		printf '# %s\n' "${title//?/-}" "$title" "uptime $2" "${title//?/-}" \
			${5:+"$5"} "uptime $3" "[$4]"
	}
	echo "TAP version 13"
	echo "# running run_vmtests: run-vmtests"
	vm_test ./hugepage-mmap 10.00 12.50 PASS "running is what this test says"
	[ "$1" = - ] || vm_test ./mremap_test 12.60 13.00 "$1"
	vm_test ./memfd_secret 13.10 13.20 SKIP
	printf '%s\n' "not ok 1 run_vmtests # exit=1 20s" "# running uffd-unit-tests: uffd-unit-tests" \
		"# Testing wp-fork on anon... $2" "# Testing poison on anon... skipped [reason: feature missing]" \
		"ok 2 uffd-unit-tests # 30s" "ok 3 uffd-stress-anon # 4s" "uffd-harness: end done"
	echo "status=finished"
}
R=$BUILD_DIR/regress/6.1
mkdir -p "$R"
vm_log PASS done >"$R/baseline.console.log"
vm_log PASS done >"$R/series.console.log"
for k in baseline series; do echo finished >"$R/$k.status"; done
check "regress: equal verdicts pass, skips on both are counted as skipped" 0 "^7 passed, 0 failed, 2 skipped$" -- \
	env REGRESS_REPORT_ONLY=1 REGRESS_DOC=0 "$S/regress.sh"
check "regress: a test's time is shown" 0 "run_vmtests: ./hugepage-mmap +pass \(2.5\) +pass \(2.5\)" -- \
	cat "$R/regress.txt"
vm_log FAIL "failed [reason: x]" >"$R/series.console.log"
check "regress: a test and a case worse on the series fail it, named" 1 \
	"mremap_test +pass \(0.4\) +fail \(0.4\) +WORSE on series.*wp-fork on anon +pass \(-\) +fail \(-\) +WORSE on series.*5 passed, 2 failed, 2 skipped" -- \
	bash -c "set -o pipefail; REGRESS_REPORT_ONLY=1 REGRESS_DOC=0 $S/regress.sh | tr '\n' ' '"
check "regress: better on the series is no failure" 0 "7 passed, 0 failed" -- \
	env REGRESS_REPORT_ONLY=1 REGRESS_DOC=0 REGRESS_KERNELS="series baseline" "$S/regress.sh"
vm_log - "failed [reason: x]" >"$R/series.console.log"
check "regress: a test the reference never reported is no failure, and shown" 0 "mremap_test +none \(-\) +pass" -- \
	env REGRESS_REPORT_ONLY=1 REGRESS_DOC=0 REGRESS_KERNELS="series baseline" "$S/regress.sh"
printf '[    5.000000] BUG: KASAN: use-after-free in change_pte_range\n' >>"$R/baseline.console.log"
check "regress: more kernel reports than the reference fails" 1 "kernel reports on the console +0 +1 +WORSE on baseline" -- \
	env REGRESS_REPORT_ONLY=1 REGRESS_DOC=0 REGRESS_KERNELS="series baseline" "$S/regress.sh"
echo "hung (no end after 10800s, killed)" >"$R/series.status"
check "regress: a guest that did not finish fails" 1 "guest +finished +hung +NOT FINISHED on series" -- \
	env REGRESS_REPORT_ONLY=1 REGRESS_DOC=0 "$S/regress.sh"
echo "ok 1 a # 1s" >"$R/series.console.log"
check "regress: a console without run_vmtests.sh is refused" 1 "series.console.log: run_vmtests.sh never started" -- \
	env REGRESS_REPORT_ONLY=1 REGRESS_DOC=0 "$S/regress.sh"
rm -rf "$R"

# --- make matrix: each row's verdict from fake consoles
M=$BUILD_DIR/matrix/6.1
mkdir -p "$M"
mx_prog() { # mx_prog ENTRY CMD PROG RESULT...: one guest test, RESULT "ok N case"
	local entry=$1 cmd=$2 prog=$3 r
	shift 3
	echo "# running $entry: $cmd"
	echo "# # selftests: mm: $prog"
	for r in "$@"; do echo "# # $r"; done
	echo "# ok 1 selftests: mm: $prog"
	echo "ok 1 $entry # 1s"
}
{
	echo "TAP version 13"
	mx_prog prog-b "run-kselftest prog-b" prog-b "not ok 1 fix.anon.same_name" "ok 2 fix.anon.user_only"
	mx_prog prog-a "run-kselftest prog-a" prog-a "ok 1 fix.anon.same_name" "ok 2 fix.anon.user_only" \
		"ok 3 fix.anon.race" "ok 4 fix.anon.register_on_anon # SKIP no THP"
	mx_prog unpriv "run-kselftest --unprivileged prog-a" prog-a "not ok 1 fix.anon.user_only"
} >"$M/baseline.1.console.log"
mx_prog prog-a "run-kselftest prog-a" prog-a "not ok 3 fix.anon.race" >"$M/baseline.2.console.log"
printf '%s\n' "test baseline" "prog-a pass" "prog-a/anon.same_name pass" "prog-a/anon.user_only fail" \
	"prog-a/anon.race fail" "prog-a/fix.anon.register_on_anon skip" "prog-b/same_name fail" >"$T/matrix.txt"
check "matrix: a case is its own program's, not another's of the same name" 0 "^prog-a/anon.same_name +pass/pass +$" -- \
	env MATRIX_REPORT_ONLY=1 MATRIX_FILE="$T/matrix.txt" "$S/matrix.sh"
check "matrix: a case that fails only unprivileged fails" 0 "^prog-a/anon.user_only +fail/fail +$" -- \
	env MATRIX_REPORT_ONLY=1 MATRIX_FILE="$T/matrix.txt" "$S/matrix.sh"
check "matrix: a race missed on boot 1 is caught on boot 2" 0 "^prog-a/anon.race +fail/fail@2 +$" -- \
	env MATRIX_REPORT_ONLY=1 MATRIX_FILE="$T/matrix.txt" "$S/matrix.sh"
check "matrix: a case is found by its full name, a skip is a skip" 0 "^prog-a/fix.anon.register_on_anon +skip/skip +$" -- \
	env MATRIX_REPORT_ONLY=1 MATRIX_FILE="$T/matrix.txt" "$S/matrix.sh"
check "matrix: every cell as expected" 0 "^6 passed, 0 failed$" -- \
	env MATRIX_REPORT_ONLY=1 MATRIX_FILE="$T/matrix.txt" "$S/matrix.sh"
printf '%s\n' "prog-a/anon.missing pass" "prog-a/same_nam pass" "prog-a/.anon.same_name pass" >>"$T/matrix.txt"
check "matrix: a case never reported, or a part of a name, is a mismatch" 1 \
	"anon.missing +pass/none MISMATCH.*same_nam +pass/none MISMATCH.*same_name +pass/none MISMATCH.*6 passed, 3 failed $" -- \
	bash -c "set -o pipefail; MATRIX_REPORT_ONLY=1 MATRIX_FILE=$T/matrix.txt $S/matrix.sh | tr '\n' ' '"
rm -f "$M/baseline.2.console.log"
check "matrix: a boot without its console is named" 1 "no console of boot 2 of baseline" -- \
	env MATRIX_REPORT_ONLY=1 MATRIX_FILE="$T/matrix.txt" "$S/matrix.sh"

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]

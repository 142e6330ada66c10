# shellcheck shell=bash
# Shared settings and helpers, sourced by every stage script.
#
# Settings (environment, all optional):
#   BASE          6.1 (default) | 6.12: the base tree and everything that
#                 goes with it (configs/BASE/, patches/BASE/, mutants/BASE/,
#                 bench/BASE/)
#   BUILD_DIR     where downloads, the kernel git tree, object trees, ccache
#                 and results live (default ~/.cache/uffd-wp-tlb: outside the
#                 clone, so a fresh clone builds warm)
#   MODE          baseline | series (default): the kernel under test
#   SERIES_UPTO   apply only the first N patches of the series (bisection)
#   EXTRA_PATCH   more patches on top of the series, space-separated, in
#                 order (mutants; the kernel is named series+A+B...)
#   DEBUG         1 selects the debug config (lockdep, KASAN, DEBUG_VM)
#   JOBS          parallel make jobs (default: number of CPUs)

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/uffd-wp-tlb}
JOBS=${JOBS:-$(nproc)}
DEBUG=${DEBUG:-0}
EXTRA_PATCH=${EXTRA_PATCH:-}
SERIES_UPTO=${SERIES_UPTO:-}
MODE=${MODE:-series}

BASE=${BASE:-6.1}
STAGE=${STAGE:-$(basename "$0" .sh)}

log() { printf '[%s] %s\n' "$STAGE" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$STAGE" "$*" >&2; exit 1; }

[ -f "$REPO/configs/$BASE/base.env" ] ||
	die "BASE must be one of: $(cd "$REPO/configs" && ls -d -- */ | tr -d / | xargs), not '$BASE'"
CONFIGS=$REPO/configs/$BASE
PATCHES=$REPO/patches/$BASE
MUTANTS=$REPO/mutants/$BASE
# Our selftest sources, one copy for every base (each series adds them
# under its tree's BASE_SELFTESTS).
OUR_SELFTESTS=$REPO/tools/testing/selftests/vm
# shellcheck source=../configs/6.1/base.env
. "$CONFIGS/base.env"
# Our programs that this base's series does not carry (BASE_NOT_IN_SERIES
# in base.env: tests of features only mainline has).
not_in_series() { [[ " ${BASE_NOT_IN_SERIES:-} " == *" $1 "* ]]; }

DL_DIR=$BUILD_DIR/dl
SRC_DIR=$BUILD_DIR/linux-$BASE
CCACHE_DIR=${CCACHE_DIR:-$BUILD_DIR/ccache}
export CCACHE_DIR

# clear_stale_index_lock: a git index.lock in the tree while no git
# process runs is what a run killed mid-'git am' left behind; every later
# git command would refuse the tree.
clear_stale_index_lock() {
	[ -e "$SRC_DIR/.git/index.lock" ] && ! pgrep -x git >/dev/null || return 0
	log "removing $SRC_DIR/.git/index.lock, left by a run that was stopped"
	rm -f "$SRC_DIR/.git/index.lock"
}

config_name() { [ "$DEBUG" = 1 ] && echo debug || echo guest; }

# The kernel under test, named after what the series stage puts in the tree.
case "$MODE" in
baseline | series) KERNEL_NAME=$MODE ;;
*) die "MODE must be baseline or series, not '$MODE'" ;;
esac
if [ -n "$SERIES_UPTO" ]; then
	[[ "$SERIES_UPTO" =~ ^[0-9]+$ ]] || die "SERIES_UPTO must be a number, not '$SERIES_UPTO'"
	[ "$MODE" = series ] || die "SERIES_UPTO needs MODE=series"
	KERNEL_NAME="$KERNEL_NAME@$SERIES_UPTO"
fi
if [ -n "$EXTRA_PATCH" ]; then
	[ "$MODE" = series ] || die "EXTRA_PATCH needs MODE=series"
	for p in $EXTRA_PATCH; do
		KERNEL_NAME="$KERNEL_NAME+$(basename "$p" .patch)"
	done
fi
kernel_name() { echo "$KERNEL_NAME"; }

OBJ_DIR=$BUILD_DIR/obj/$BASE-$(config_name)
OUT_DIR=$BUILD_DIR/out/$BASE/$KERNEL_NAME-$(config_name)
STAGES_FILE=$OUT_DIR/stages.tsv

# Run "$@" as one timed step of this stage; the time goes to the results.
stage_start=$(date +%s)
stage_done() {
	local secs=$(($(date +%s) - stage_start))
	mkdir -p "$(dirname "$STAGES_FILE")"
	touch "$STAGES_FILE"
	# Keep one line per stage: the latest run of it.
	{ grep -v "^$STAGE	" "$STAGES_FILE" || true
	  printf '%s\t%s\t%s\n' "$STAGE" "$secs" "$*"; } >"$STAGES_FILE.new"
	mv "$STAGES_FILE.new" "$STAGES_FILE"
	log "done in ${secs}s${*:+ ($*)}"
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			die "'$c' not found: run 'make deps' first"
	done
}

# verify FILE SHA256 PIN: on a mismatch the file is moved aside, never
# used; PIN names where the checksum is pinned.
verify() {
	local got
	got=$(sha256sum "$1" | cut -d' ' -f1)
	if [ "$got" != "$2" ]; then
		mv -f "$1" "$1.bad"
		die "checksum mismatch for $(basename "$1"):
  expected $2 ($3)
  got      $got
  moved aside to $1.bad; nothing was unpacked or built"
	fi
	log "sha256 ok: $(basename "$1")"
}

# debian_mirror: the URI of the machine's own Debian archive (the first
# source that carries its release suite, not -security), read from its apt
# configuration at run time so that no host is written anywhere else
# (APT_ETC, OS_CODENAME: for the self-tests).
debian_mirror() {
	local etc=${APT_ETC:-/etc/apt} codename uri
	codename=${OS_CODENAME:-$(. /etc/os-release && echo "$VERSION_CODENAME")}
	uri=$(awk -v c="$codename" '
		/^URIs:/ { u = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == c && u != "") { print u; exit } }
		/^$/ { u = "" }' "$etc"/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$uri" ] || uri=$(awk -v c="$codename" '/^deb / {
		for (i = 2; i <= NF; i++) if ($i == c) { print ($2 ~ /^\[/ ? $3 : $2); exit } }' \
		"$etc"/sources.list "$etc"/sources.list.d/*.list 2>/dev/null || true)
	[ -n "$uri" ] || die "no apt source for Debian '$codename' in $etc: cannot reach suite '${BASE_SUITE:-}'"
	echo "$uri"
}

# apt_suite SUITE apt-get|apt-cache ARGS...: apt with a private configuration under
# BUILD_DIR/apt/SUITE whose only sources are SUITE (deb and deb-src) on
# the machine's own mirror (for suites the machine does not list: experimental, sid). The
# machine's apt state is not touched.
apt_suite() {
	local suite=$1 cmd=$2 dir=$BUILD_DIR/apt/$1
	shift 2
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
	if [ ! -f "$dir/sources.list" ]; then
		local uri
		uri=$(debian_mirror)
		printf '%s [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
			deb "$uri" "$suite" deb-src "$uri" "$suite" >"$dir/sources.list"
	fi
	"$cmd" -q -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" \
		-o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)" "$@"
}

# apt_download PACKAGE VERSION: apt-get download into the current folder,
# from BASE_SUITE's private configuration when the pin names a suite the
# machine does not list. On failure, names the versions the archive has.
apt_download() {
	local have
	if [ -z "${BASE_SUITE:-}" ]; then
		apt-get download "$1=$2" >&2 && return
		have=$(apt-cache madison "$1" 2>/dev/null | awk '{ print $3 }' | xargs)
	else
		log "updating the package lists of suite $BASE_SUITE ($BUILD_DIR/apt/$BASE_SUITE)"
		apt_suite "$BASE_SUITE" apt-get update >/dev/null ||
			die "apt-get update of suite $BASE_SUITE failed"
		apt_suite "$BASE_SUITE" apt-get download "$1=$2" >&2 && return
		have=$(apt_suite "$BASE_SUITE" apt-cache madison "$1" 2>/dev/null | awk '{ print $3 }' | xargs)
	fi
	die "apt-get download $1=$2 failed; the archive${BASE_SUITE:+ ($BASE_SUITE)} has: ${have:-no version of $1}
  (run 'apt-get update'? if the pinned version is gone, move the pin: README, 'Moving a pin')"
}

# fetch_pinned PACKAGE VERSION DEB_SHA256 TARBALL TARBALL_SHA256 PIN:
# download the Debian package (apt_download) unless its tarball is in
# DL_DIR, verify both against PIN's checksums, print the tarball's path.
fetch_pinned() {
	local deb=$DL_DIR/${1}_${2//:/%3a}_all.deb tarball
	tarball=$DL_DIR/$(basename "$4")
	mkdir -p "$DL_DIR"
	if [ ! -f "$tarball" ]; then
		if [ ! -f "$deb" ]; then
			need_cmd apt-get
			log "downloading $1=$2"
			(cd "$DL_DIR" && apt_download "$1" "$2")
		fi
		verify "$deb" "$3" "$6"
		log "extracting $4 from $(basename "$deb")"
		dpkg-deb --fsys-tarfile "$deb" | tar -xO "./$4" >"$tarball.part" ||
			die "$4 not found in $(basename "$deb")"
		mv "$tarball.part" "$tarball"
	fi
	verify "$tarball" "$5" "$6"
	echo "$tarball"
}

# TAP for the check scripts: tap_result OK|FAIL DESCRIPTION [DETAILS], then
# tap_end prints the plan and the "N passed, N failed" line and sets the
# exit status.
tap_n=0 tap_failed=0
tap_result() {
	tap_n=$((tap_n + 1))
	if [ "$1" = OK ]; then
		echo "ok $tap_n $2"
	else
		echo "not ok $tap_n $2"
		[ -z "${3:-}" ] || echo "$3" | sed 's/^/#   /'
		tap_failed=$((tap_failed + 1))
	fi
}
tap_skip() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n $1 # SKIP $2"
}
tap_end() {
	echo "1..$tap_n"
	echo "$((tap_n - tap_failed)) passed, $tap_failed failed"
	[ "$tap_failed" = 0 ]
}

# kernel_env KERNEL: the settings that select it, one per line. A mutant
# column may stack mutants: A+B is mutants/A.patch, then mutants/B.patch;
# a name not in mutants/BASE/ is an alternative design in bench/BASE/NAME.patch.
kernel_env() {
	local m patches=()
	case "$1" in
	baseline) echo "MODE=baseline" ;;
	series) echo "MODE=series" ;;
	series@[0-9]*) printf 'MODE=series\nSERIES_UPTO=%s\n' "${1#series@}" ;;
	*)
		for m in ${1//+/ }; do
			if [ -f "$MUTANTS/$m.patch" ]; then
				patches+=("$MUTANTS/$m.patch")
			elif [ -f "$REPO/bench/$BASE/$m.patch" ]; then
				patches+=("$REPO/bench/$BASE/$m.patch")
			else
				die "no patch mutants/$BASE/$m.patch or bench/$BASE/$m.patch"
			fi
		done
		echo "MODE=series"
		echo "EXTRA_PATCH=${patches[*]}" ;;
	esac
}

# check_kernels KERNEL...: die on a name kernel_env does not know, before
# anything is built.
check_kernels() {
	local k
	for k in "$@"; do
		kernel_env "$k" >/dev/null
	done
}

# build_kernel KERNEL [VAR=value...]: build that kernel, its selftests and
# its initramfs (the settings of kernel_env, then the given ones); set
# KERNEL_OUT to the kernel's output directory. boot_kernel also boots it,
# running the guest tests the settings select (TESTS, TESTS_FILE); a
# failed guest run is the caller's to judge from KERNEL_OUT/console.log.
build_kernel() {
	local k=$1 s kenv
	shift
	mapfile -t kenv < <(kernel_env "$k")
	for s in series kernel selftests initramfs; do
		env "${kenv[@]}" "$@" "$REPO/scripts/$s.sh" || die "kernel $k: stage $s failed"
	done
	KERNEL_OUT=$(kernel_out "$k" "$@")
}
# kernel_out KERNEL [VAR=value...]: that kernel's output directory.
kernel_out() {
	local k=$1 kenv
	shift
	mapfile -t kenv < <(kernel_env "$k")
	env "${kenv[@]}" "$@" bash -c ". '$REPO/scripts/lib.sh'; echo \$OUT_DIR"
}
boot_kernel() {
	local kenv
	build_kernel "$@"
	mapfile -t kenv < <(kernel_env "$1")
	shift
	env "${kenv[@]}" "$@" "$REPO/scripts/qemu.sh" || true
}

#!/bin/bash
# Stage "deps": install the Debian packages the pipeline needs. Runs
# 'apt-get update' once, and only when something is missing; uses sudo
# when not root. Arguments: more packages that one stage needs (make bench:
# gnuplot-nox).
. "$(dirname "$0")/lib.sh"

packages=(
	build-essential bc bison flex libelf-dev libssl-dev dwarves kmod cpio
	xz-utils ccache rsync file
	busybox-static bash-static qemu-system-x86 libcap-dev libnuma-dev
	sparse codespell perl python3 python3-ply python3-git git git-email
	libmailtools-perl libemail-valid-perl libio-socket-ssl-perl
	"$@"
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ "${#missing[@]}" = 0 ]; then
	log "all ${#packages[@]} packages installed"
	stage_done "nothing to install"
	exit 0
fi

sudo=
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]}"
	sudo=sudo
fi
log "installing: ${missing[*]}"
$sudo apt-get update -q >/dev/null || die "apt-get update failed"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
	"${missing[@]}" >"${TMPDIR:-/tmp}/uffd-deps.log" 2>&1 ||
	{ tail -20 "${TMPDIR:-/tmp}/uffd-deps.log" >&2; die "apt-get install failed"; }
stage_done "installed ${#missing[@]} packages"

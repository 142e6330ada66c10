#!/bin/bash
# Recipients of one patch of the series, from the base tree's
# scripts/get_maintainer.pl, one per line (git send-email --cc-cmd). For
# the cover letter: everyone any patch of the series goes to.
. "$(dirname "$0")/lib.sh"
[ $# = 1 ] || die "usage: $0 PATCH"
set -- "$(realpath "$1")"

for_patch() {
	(cd "$SRC_DIR" && PATH=/usr/bin:$PATH ./scripts/get_maintainer.pl \
		--no-rolestats --no-git --no-git-fallback "$1" 2>/dev/null)
}

case "$(basename "$1")" in
*0000-cover-letter.patch)
	for p in "$(dirname "$1")"/*.patch; do
		case "$p" in *0000-cover-letter.patch) continue ;; esac
		for_patch "$p"
	done | sort -u ;;
*) for_patch "$1" ;;
esac

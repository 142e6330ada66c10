#!/bin/bash
# Stage "debian-delta": proves that the series applies to Linus' tree as
# well as to the pinned Debian tarball. It fetches Debian's source package
# (`linux`, or the backport's) at the pin's version (apt-get source
# --download-only, into $DL_DIR/debian-src/VERSION; apt checks the files
# against the signed .dsc; reused when there), lists every file the patches
# of debian/patches/series touch, and checks, as TAP, for each file the
# series changes: no Debian patch touches it, and the pinned tarball's copy
# (BASE_TAG in the base tree) is byte-identical to the orig tarball's
# (Linus' text; a file the series creates must be in neither). The counts
# and the files in both are printed as comments. Only debian/patches/series
# is read: it is what linux-source's tarball carries (the rt featureset's
# patches are not in it).
#
#   DELTA_FILES='mm/hugetlb.c ...'  check these files, not the series' files
. "$(dirname "$0")/lib.sh"
need_cmd apt-get git tar xz

version=${BASE_VERSION#*:}
dir=$DL_DIR/debian-src/$version
git -C "$SRC_DIR" rev-parse -q --verify "refs/tags/$BASE_TAG" >/dev/null ||
	die "no $BASE_TAG in $SRC_DIR: run 'make base BASE=$BASE' first"

# dsc_ok: the .dsc in dir and every file it names, with its checksum (apt
# checked the signed .dsc when it fetched it; a file cut short must not pass).
dsc_ok() {
	dsc=$(find "$dir" -maxdepth 1 -name '*.dsc' 2>/dev/null | sed -n 1p)
	[ -n "$dsc" ] && awk '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 }
		on && NF == 3 { print $1 "  " $3 }' "$dsc" | (cd "$dir" && sha256sum -c --quiet >&2)
}
if dsc_ok; then
	log "reusing $(basename "$dsc")"
else
	# The pin's suite, or (a base from the machine's own apt, which lists no
	# deb-src) the archive and suite it has the pinned version from.
	suite=${BASE_SUITE:-}
	if [ -z "$suite" ]; then
		read -r uri suite < <(apt-cache madison "$BASE_PACKAGE" | awk -F'|' -v v="$BASE_VERSION" '
			{ gsub(/^ +| +$/, "", $2) } $2 == v { split($3, a, " "); sub(/\/.*/, "", a[2]); print a[1], a[2]; exit }') ||
			die "the machine's apt has no $BASE_PACKAGE=$BASE_VERSION: cannot tell its suite"
		mkdir -p "$BUILD_DIR/apt/$suite"
		printf '%s [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
			deb "$uri" "$suite" deb-src "$uri" "$suite" >"$BUILD_DIR/apt/$suite/sources.list"
	fi
	apt_suite "$suite" apt-get update >/dev/null || die "apt-get update of suite $suite failed"
	# The source package: linux for linux-source-7.3, linux-6.12 for a backport.
	src=$(apt_suite "$suite" apt-cache show "$BASE_PACKAGE=$BASE_VERSION" |
		awk '/^Source:/ && s == "" { s = $2 } END { print s }') ||
		die "suite $suite has no $BASE_PACKAGE=$BASE_VERSION"
	log "fetching the source package ${src:=$BASE_PACKAGE}=$BASE_VERSION (suite $suite)"
	mkdir -p "$dir"
	(cd "$dir" && apt_suite "$suite" apt-get source --download-only "$src=$BASE_VERSION" >&2) ||
		die "apt-get source $src=$BASE_VERSION failed (suite $suite; apt's errors above: a 404 is a mirror without the source files)"
	dsc_ok || die "the files of $src=$BASE_VERSION in $dir do not match their .dsc"
fi
debian_tar=$dir/$(awk '$NF ~ /\.debian\.tar\./ { f = $NF } END { print f }' "$dsc")
orig=$dir/$(awk '$NF ~ /\.orig\.tar\./ { f = $NF } END { print f }' "$dsc")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# touched PATCH...: "patch<TAB>file" for each file a -p1 patch (named
# relative to the current folder) touches, from its "diff --git" lines and
# "---"/"+++" header pairs (/dev/null, of a new or deleted file, is none).
touched() {
	awk '
	function strip(p) { sub(/\t.*/, "", p); if (p == "/dev/null") return ""; sub(/^[^\/]*\//, "", p); return p }
	function out(p) { p = strip(p); if (p != "") print name "\t" p }
	FNR == 1 { name = FILENAME; prev = "" }
	/^diff --git / { out($3); out($4) }
	/^\+\+\+ / && prev ~ /^--- / { out(substr(prev, 5)); out(substr($0, 5)) }
	{ prev = $0 }' "$@" | sort -u
}

tar -xf "$debian_tar" -C "$work" debian/patches
mapfile -t dpatches < <(sed 's/#.*//' "$work/debian/patches/series" | awk 'NF { print $1 }')
for p in "${dpatches[@]}"; do
	[ -f "$work/debian/patches/$p" ] || die "debian/patches/series names $p, which is not in $(basename "$debian_tar")"
done
: >"$work/debian.tsv"
[ "${#dpatches[@]}" = 0 ] || (cd "$work/debian/patches" && touched "${dpatches[@]}") >"$work/debian.tsv"

if [ -n "${DELTA_FILES:-}" ]; then
	what="DELTA_FILES"
	tr -s ' \t' '\n' <<<"$DELTA_FILES" | awk NF | sort -u >"$work/ours"
else
	mapfile -t ours < <(sed 's/#.*//' "$PATCHES/series" | awk 'NF { print $1 }')
	what="patches/$BASE/series, ${#ours[@]} patches"
	: >"$work/ours"
	[ "${#ours[@]}" = 0 ] || (cd "$PATCHES" && touched "${ours[@]}") | cut -f2 | sort -u >"$work/ours"
fi
mapfile -t files <"$work/ours"

echo "TAP version 13"
echo "# Debian $(basename "$dsc" .dsc): ${#dpatches[@]} patches in debian/patches/series," \
	"touching $(cut -f2 "$work/debian.tsv" | sort -u | wc -l) files"
echo "# the series ($what): ${#files[@]} files"
echo "# in both: $(cut -f2 "$work/debian.tsv" | sort -u | comm -12 - "$work/ours" | wc -l)"
if [ "${#files[@]}" = 0 ]; then
	tap_skip "no file to check" "patches/$BASE/series lists no patch (DELTA_FILES='...' names files)"
	stage_done "${#dpatches[@]} Debian patches, no series"
	tap_end
	exit
fi

# The orig tarball's copies of those files (one top directory; stripped).
mkdir "$work/orig"
tar -xf "$orig" -C "$work/orig" --strip-components=1 --wildcards --no-wildcards-match-slash \
	"${files[@]/#/*/}" 2>/dev/null || true

for f in "${files[@]}"; do
	by=$(awk -F'\t' -v f="$f" '$2 == f { print $1 }' "$work/debian.tsv") new=
	[ -z "$by" ] || echo "#   $f: $(echo "$by" | xargs)"
	if git -C "$SRC_DIR" cat-file -e "$BASE_TAG:$f" 2>/dev/null; then
		git -C "$SRC_DIR" show "$BASE_TAG:$f" >"$work/base"
		if [ ! -f "$work/orig/$f" ]; then
			same="not in the orig tarball"
		elif cmp -s "$work/base" "$work/orig/$f"; then
			same=
		else
			same="differs from the orig tarball ($(diff "$work/orig/$f" "$work/base" | grep -c '^[<>]' || true) lines changed)"
		fi
	elif [ -f "$work/orig/$f" ]; then
		same="in the orig tarball, not in $BASE_TAG"
	else
		same='' new=" (new: in neither tarball)"
	fi
	if [ -z "$by$same" ]; then
		tap_result OK "$f: no Debian patch, the tarball's copy is Linus'${new:-}"
	else
		tap_result FAIL "$f: no Debian patch, the tarball's copy is Linus'" \
			"${by:+touched by: $(echo "$by" | xargs)}${by:+${same:+
}}$same"
	fi
done
stage_done "${#dpatches[@]} Debian patches, ${#files[@]} files, $tap_failed failed"
tap_end

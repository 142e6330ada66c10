#!/bin/bash
# Stage "kernel": configure (tinyconfig + configs/guest.config, plus
# configs/BASE/guest.config if there is one, plus configs/debug.config when
# DEBUG=1) and build bzImage out of tree in
# $BUILD_DIR/obj/<config> with ccache, then copy it to the run's output dir.
. "$(dirname "$0")/lib.sh"
need_cmd gcc make flex bison bc ccache

fragments=("$REPO/configs/guest.config")
[ -f "$CONFIGS/guest.config" ] && fragments+=("$CONFIGS/guest.config")
[ "$DEBUG" = 1 ] && fragments+=("$REPO/configs/debug.config")

kmake() {
	make -C "$SRC_DIR" O="$OBJ_DIR" ARCH=x86_64 CC="ccache gcc" \
		KBUILD_BUILD_TIMESTAMP="$BASE_VERSION" KBUILD_BUILD_USER=uffd \
		KBUILD_BUILD_HOST=harness "$@"
}

# Every option a fragment asks for must be in the final .config: a
# dependency Kconfig silently dropped would make a test meaningless.
check_config() {
	local line sym missing=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			grep -qxF "$line" "$OBJ_DIR/.config" && continue ;;
		"# CONFIG_"*" is not set")
			sym=${line#\# }; sym=${sym%% *}
			! grep -q "^$sym=" "$OBJ_DIR/.config" && continue ;;
		*) continue ;;
		esac
		log "config: '$line' requested but not in .config"
		missing=1
	done < <(cat "${fragments[@]}")
	[ "$missing" = 0 ] || die "config fragment not satisfied (see above)"
}

mkdir -p "$OBJ_DIR" "$OUT_DIR"
want=$(cat "${fragments[@]}" | sha256sum | cut -d' ' -f1)
have=$(cat "$OBJ_DIR/.uffd-config-sha256" 2>/dev/null || true)
if [ "$want" != "$have" ] || [ ! -f "$OBJ_DIR/.config" ]; then
	log "configuring $(config_name): tinyconfig + ${fragments[*]##*/}"
	kmake -s tinyconfig >/dev/null
	"$SRC_DIR/scripts/kconfig/merge_config.sh" -m -O "$OBJ_DIR" \
		"$OBJ_DIR/.config" "${fragments[@]}" >"$OBJ_DIR/merge_config.log"
	kmake -s olddefconfig >/dev/null
	echo "$want" >"$OBJ_DIR/.uffd-config-sha256"
fi
check_config

head=$(git -C "$SRC_DIR" rev-parse --short HEAD)
log "building bzImage for $(kernel_name) ($head) in $OBJ_DIR with $JOBS jobs"
log "build log: $OUT_DIR/kernel-build.log"
if ! kmake -j"$JOBS" bzImage >"$OUT_DIR/kernel-build.log" 2>&1; then
	grep -E 'error|Error' "$OUT_DIR/kernel-build.log" | head -20 >&2 || true
	tail -20 "$OUT_DIR/kernel-build.log" >&2
	die "kernel build failed for $(kernel_name) at $head"
fi
warnings=$(grep -c 'warning:' "$OUT_DIR/kernel-build.log" || true)
cp "$OBJ_DIR/arch/x86/boot/bzImage" "$OUT_DIR/bzImage"
cp "$OBJ_DIR/.config" "$OUT_DIR/config"
git -C "$SRC_DIR" log --oneline "$BASE_TAG..HEAD" >"$OUT_DIR/commits.txt"
stage_done "$head, $warnings new warnings"

#!/bin/bash
# 'make mail': git send-email --dry-run of patches/BASE/ (cover letter first),
# recipients from scripts/recipients.sh. Refuses while SENDER is unset
# (configs/sender.env), when the cover letter is not from SENDER, or when a
# patch does not end with SENDER's Signed-off-by (a patch may be authored
# by someone else: git send-email keeps the author in the body).
#   SEND=1   really send (still only with SENDER set)
. "$(dirname "$0")/lib.sh"
. "$REPO/configs/sender.env"
need_cmd git
git send-email --help >/dev/null 2>&1 || die "git send-email missing: run 'make deps' (git-email)"

[ -n "$SENDER" ] || die "SENDER is unset: set it in configs/sender.env or as SENDER='Name <address>'; refusing to mail"
mapfile -t files < <(ls "$PATCHES"/*.patch)
[ "${#files[@]}" -gt 0 ] || die "no patches in patches/$BASE/"
for f in "${files[@]}"; do
	case "$f" in
	*0000-cover-letter.patch)
		from=$(sed -n '/^From: /{N;s/\n / /;s/^From: //;p;q}' "$f")
		[ "$from" = "$SENDER" ] ||
			die "$(basename "$f") is from '$from', not SENDER '$SENDER': commit with that identity and 'make patches'" ;;
	*)
		sob=$(sed -n '/^---$/q;s/^Signed-off-by: //p' "$f" | tail -1)
		[ "$sob" = "$SENDER" ] ||
			die "$(basename "$f") ends with the Signed-off-by of '$sob', not SENDER '$SENDER'" ;;
	esac
done

dry=--dry-run
[ "${SEND:-0}" = 1 ] && dry=
log "${dry:-SENDING} ${#files[@]} mails from $SENDER"
git send-email $dry --confirm=never --no-chain-reply-to --from="$SENDER" \
	--suppress-cc=self --cc-cmd="$REPO/scripts/recipients.sh" \
	--to=linux-mm@kvack.org "${files[@]}"

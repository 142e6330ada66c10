#!/bin/bash
# Reading a guest's serial console log; sourced by qemu.sh and results.sh,
# and usable on its own:
#   console.sh errors LOG   kernel lines that mean the kernel went wrong
#   console.sh tap LOG      the top-level TAP results ("ok N name ...")
#   console.sh count LOG    "P F S": passed, failed, skipped

# Kernel lines carry a printk timestamp ("[    1.234567] "); user output
# never does, so a test printing "WARNING:" cannot fail the run by itself.
CONSOLE_ERROR_RE='Kernel panic|Oops|kernel BUG at|BUG:|WARNING:|general protection fault|KASAN:|UBSAN:|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|soft lockup|hard LOCKUP|rcu_sched self-detected stall|rcu: INFO|blocked for more than'

console_errors() {
	tr -d '\r' <"$1" | grep -E '^\[ *[0-9]+\.[0-9]+\] ' |
		grep -E "$CONSOLE_ERROR_RE" || true
}

console_tap() {
	tr -d '\r' <"$1" | grep -E '^(not )?ok [0-9]+ ' || true
}

# progress LOG [RE]: the top-level TAP results and the lines matching RE.
console_progress() {
	tr -d '\r' <"$1" | grep -E "^(not )?ok [0-9]+ ${2:+|$2}" || true
}

# count LOG: passed failed skipped, from the top-level TAP lines.
console_count() {
	console_tap "$1" | awk '
		/^not ok/ { f++; next }
		/# *SKIP/ { s++; next }
		{ p++ }
		END { printf "%d %d %d\n", p, f, s }'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	case "${1:-}" in
	errors) console_errors "$2" ;;
	tap) console_tap "$2" ;;
	count) console_count "$2" ;;
	*) echo "usage: $0 errors|tap|count LOG" >&2; exit 2 ;;
	esac
fi

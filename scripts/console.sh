#!/bin/bash
# Reading a guest's serial console log; sourced by qemu.sh and results.sh,
# and usable on its own:
#   console.sh errors LOG   kernel lines that mean the kernel went wrong
#   console.sh tap LOG      the top-level TAP results ("ok N name ...")
#   console.sh count LOG    "P F S": passed, failed, skipped
#   console.sh records LOG  one line per result, tab-separated: entry
#                           (the tests.txt name), program, run-as (root or
#                           user), case ("" for the entry's own result),
#                           verdict (pass, fail or skip)

# Kernel lines carry a printk timestamp ("[    1.234567] "); user output
# never does, so a test printing "WARNING:" cannot fail the run by itself.
PRINTK_RE='^\[ *[0-9]+\.[0-9]+\] '
CONSOLE_ERROR_RE='Kernel panic|Oops|kernel BUG at|BUG:|WARNING:|general protection fault|KASAN:|UBSAN:|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|soft lockup|hard LOCKUP|rcu_sched self-detected stall|rcu: INFO|blocked for more than'

console_errors() {
	tr -d '\r' <"$1" | grep -E "$PRINTK_RE" |
		grep -E "$CONSOLE_ERROR_RE" || true
}

console_tap() {
	tr -d '\r' <"$1" | grep -E '^(not )?ok [0-9]+ ' || true
}

# The guest prints "# running ENTRY: CMD", then the command's output
# with "# " before each line, then "ok N ENTRY". A kselftest program
# under run-kselftest names itself ("selftests: mm: PROG") and reports
# its cases one "# " deeper. A case's name ends where a TAP directive
# (" # SKIP", " # exit=1") begins; it may hold spaces.
console_records() {
	tr -d '\r' <"$1" | grep -vE "$PRINTK_RE" | awk '
		function verdict(line) {
			return line ~ /^not ok/ ? "fail" : line ~ / # *SKIP/ ? "skip" : "pass"
		}
		function name(line) {
			sub(/^(not )?ok [0-9]+ /, "", line)
			sub(/ # .*/, "", line)
			return line
		}
		/^# running [^:]+: / {
			entry = $3; sub(/:$/, "", entry); prog = entry
			as = / --unprivileged / ? "user" : "root"
			next
		}
		entry == "" { next }
		/^(not )?ok [0-9]+ / {
			printf "%s\t%s\t%s\t\t%s\n", entry, entry, as, verdict($0)
			entry = ""
			next
		}
		{ line = $0; sub(/^(# )+/, "", line) }
		line ~ /^selftests: [^ ]+: / { prog = line; sub(/^selftests: [^ ]+: /, "", prog); sub(/ .*/, "", prog); next }
		line ~ /^(not )?ok [0-9]+ selftests: / { next }
		line ~ /^(not )?ok [0-9]+ / && $0 ~ /^# / {
			printf "%s\t%s\t%s\t%s\t%s\n", entry, prog, as, name(line), verdict(line)
		}'
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
	records) console_records "$2" ;;
	*) echo "usage: $0 errors|tap|count|records LOG" >&2; exit 2 ;;
	esac
fi

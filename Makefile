# Entry points of the uffd-wp TLB series and its harness. See README.md.
#
#   make run          base + series: build, boot, run the tests, summarize
#   make baseline     the same for the unpatched base
#   make check        harness self-tests; hygiene and 'make run' of both bases;
#                     6.12's bisectability and proof matrix (what CI runs)
#   make check-full   'make check', 6.1's bisectability and matrix, and both
#                     debug kernels
#   make patches      regenerate patches/ from the kernel tree's dev branch
#   make bench        what a protect costs other threads: base, series, v2 (ratios, plot)
#   make matrix       base, series and every mutant against configs/matrix.txt
#   make regress      the base tree's whole vm suite and 6.12's userfaultfd
#                     tests on base and series: no test worse on the series
#   make soak         uffd-wp-race for 10^6 cycles per memory type, debug kernel
#   make flake        each regression program 20 times per matrix kernel
#   make mail         git send-email --dry-run of patches/ (needs SENDER)
#   make debian-delta Debian's patches touch no file the series changes, and the
#                     tarball's copies are Linus' (TAP; DELTA_FILES='...')
#   make <stage>      one stage: deps base series kernel selftests
#                     upstream-tests initramfs qemu results
#
# Settings (make VAR=value or environment): BASE=6.1|6.12|7.3 (default 6.1:
# configs/BASE/, patches/BASE/, mutants/BASE/), MODE=baseline|series,
# EXTRA_PATCH='file...', DEBUG=1, ACCEL=tcg|kvm, TESTS='glob ...', BUILD_DIR,
# JOBS, GUEST_TIMEOUT. Each is described in the script that reads it.

SHELL := /bin/bash
STAGES := deps base series kernel selftests upstream-tests initramfs qemu results debian-delta

.PHONY: all run baseline check check-full patches bench matrix regress soak flake mail $(STAGES)

all: run

$(STAGES):
	@scripts/$@.sh

# A failed guest run still gets its summary; results.sh sets the verdict.
run:
	@set -e; for s in deps base series kernel selftests initramfs; do \
		scripts/$$s.sh; done; \
	scripts/qemu.sh || true; \
	scripts/results.sh

baseline:
	@$(MAKE) --no-print-directory run MODE=baseline

check:
	@scripts/check.sh

check-full:
	@CHECK_FULL=1 scripts/check.sh

patches:
	@scripts/format-patches.sh

bench:
	@scripts/bench.sh

matrix:
	@scripts/matrix.sh

regress:
	@scripts/regress.sh

soak:
	@scripts/soak.sh

flake:
	@scripts/flake.sh

mail:
	@scripts/mail.sh

#!/bin/bash
# Model-based stress (tests/integration/stress.py): STRESS_PROCS (3) processes, each
# STRESS_OPS (300) random open/pwrite/ftruncate/close/truncate/rename/link/unlink/
# mkdir/rmdir/commit operations on staging from a fixed seed, every step compared
# with the same operation on a native shadow tree and with a model of the
# canonical store; a failing seed prints the shortest sequence it shrank to.
# `make stress` runs it larger.  Then the daemon is restarted and the trees are
# compared once more: what was staged survives a remount.
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1
D=$S/lab/stress
mkdir -p "$D" "$T/shadow"
procs=${STRESS_PROCS:-3} ops=${STRESS_OPS:-300} seed=${STRESS_SEED:-1}
out=$($PY "$TESTS_DIR/stress.py" "$MNT" "$D" "$T/shadow" --procs "$procs" --ops "$ops" \
	--seed "$seed" 2>&1)
check_eq "every process matches the model ($procs x $ops operations)" \
	"stress: $procs passed, 0 failed" "$(tail -n 1 <<<"$out")"
grep -v '^stress: ' <<<"$out" | head -n 40 | sed 's/^/    /'
listing() { (cd "$1" && find . -path '*/.receipts' -prune -o -printf '%y %s %n %m %p\n' | sort); }
before=$(listing "$D")
check_eq "the mount lists what the shadow holds" "$(listing "$T/shadow")" "$before"
remount || exit 1
check_eq "and so it does after a remount" "$before" "$(listing "$D")"
sums() { (cd "$1" && find . -path '*/.receipts' -prune -o -type f -print0 | sort -z | xargs -0r md5sum); }
check_eq "with the same bytes" "$(sums "$T/shadow")" "$(sums "$D")"
unmount_fs

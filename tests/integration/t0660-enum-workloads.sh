#!/bin/bash
# Bounded workload enumeration (issue 10; CrashMonkey: most crash bugs need at
# most three operations): every sequence of up to three of write, fsync,
# rename, link, unlink, truncate and commit on two names (about 1,500 after
# mirror images are dropped), each in a directory of its own, against a model
# (tests/integration/enum_workloads.py).  Each op's result must be the model's;
# then the daemon is SIGKILLed and the store mounted again, and every
# directory (names, bytes, hard links) and every committed object must be the
# model's state.  The crash is the daemon's, not the machine's: what the
# kernel already had stays, so the claim is that the daemon keeps nothing
# acknowledged in memory alone and that recovery and (s3) reconciliation
# bring back exactly what was there, with no half-done commit; fsck is clean.
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1
E=$S/lab/enum
mkdir -p "$E"
out=$($PY "$TESTS_DIR/enum_workloads.py" run "$E" "$T/model.json" 2>&1)
rc=$?
[ $rc -ne 0 ] && head -n 10 <<<"$out" >&2
check_eq "every op of every workload gave the model's result ($(tail -n 1 <<<"$out"))" 0 "$rc"
n=$(grep -oE '^ran [0-9]+' <<<"$out" | cut -d' ' -f2)
check "more than a thousand workloads ran (${n:-0})" test "${n:-0}" -gt 1000
# what w0273 (write, commit, write) once caught: a name created again right after
# its commit returned must be a new file, never the committed one's stale dentry
out=$($PY - "$E/again" <<'PYEOF' 2>&1
import os, sys
d = sys.argv[1]
os.mkdir(d)
bad = 0
for i in range(300):
    p = os.path.join(d, "a")
    with open(p, "ab") as f:
        f.write(b"again %d;" % i)
    os.setxattr(p, "user.stagefs.commit", b"hash")
    try:
        with open(p, "ab") as f:
            f.write(b"next %d;" % i)
        os.unlink(p)
    except OSError as e:
        bad += 1
print("%d of 300 failed" % bad)
PYEOF
)
check_eq "a name created again right after its commit is a new file (300 times)" "0 of 300 failed" "$out"
kill_daemon
mount_fs || exit 1
out=$($PY "$TESTS_DIR/enum_workloads.py" check "$MNT" "$E" "$T/model.json" 2>&1)
rc=$?
[ $rc -ne 0 ] && head -n 10 <<<"$out" >&2
check_eq "after the kill and a remount every workload is the model's state ($(tail -n 1 <<<"$out"))" 0 "$rc"
unmount_fs
out=$("$STAGEFS" fsck "$SOURCE" -o "index=$INDEX${BACKEND_OPTS:+,$BACKEND_OPTS}" 2>&1)
check_eq "fsck is clean ($(tail -n 1 <<<"$out"))" 0 $?

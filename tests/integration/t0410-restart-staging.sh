#!/bin/bash
# Staged data across a daemon crash and, on s3, the loss of the workstation's
# cache: nothing written into staging is lost, and it still commits.
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1
D=$S/lab/crash
check "mkdir" mkdir -p "$D"

# a writer has written (no fsync, no close) when the daemon dies
$PY - "$D/open.bin" "$T/open.ref" <<'PYEOF' &
import os, sys, time
data = os.urandom(3 << 20)
open(sys.argv[2], "wb").write(data)
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, data)
open(sys.argv[2] + ".ready", "w").close()
time.sleep(60)
PYEOF
WRITER=$!
BG_PIDS="$BG_PIDS $WRITER"
for i in $(seq 100); do [ -e "$T/open.ref.ready" ] && break; sleep 0.1; done
check "writer wrote" test -e "$T/open.ref.ready"
# a file closed normally, for comparison
head -c 100000 /dev/urandom >"$T/closed.ref"
cp "$T/closed.ref" "$D/closed.bin"
kill_daemon
kill -KILL "$WRITER" 2>/dev/null
wait "$WRITER" 2>/dev/null
mount_fs || exit 1
check "written-but-unclosed file intact after the crash" cmp "$T/open.ref" "$D/open.bin"
check "closed file intact after the crash" cmp "$T/closed.ref" "$D/closed.bin"
check "the store holds the unclosed file's bytes" cmp "$T/open.ref" "$(sobj _staging/lab/crash/open.bin)"
check_eq "commit it" OK "$(commit "$D/open.bin" '{"field":"raw","key":{"id":1},"token":"crashTOK"}')"
check "canonical bytes" cmp "$T/open.ref" "$MNT/_schema/lab/crash/id=1/raw_crashTOK.bin"

if [ "$BACKEND" = s3 ]; then
	# the workstation's cache is gone: staged files come back from the bucket
	unmount_fs
	rm -rf "$T/cache"
	mount_fs || exit 1
	check "staged file back from the bucket after losing the cache" cmp "$T/closed.ref" "$D/closed.bin"
	check_eq "and it commits" OK "$(commit "$D/closed.bin" hash)"
	h=$($PY -c 'import base64,hashlib,sys; print(base64.b32encode(hashlib.md5(open(sys.argv[1],"rb").read()).digest()).decode().rstrip("=").lower())' "$T/closed.ref")
	check "hash object" cmp "$T/closed.ref" "$MNT/_hash/lab/$h"
	before=$(grep -c 'staging reconciled' "$T/daemon.log")
	remount || exit 1
	check_eq "a clean remount transfers nothing" "$before" "$(grep -c 'staging reconciled' "$T/daemon.log")"
fi

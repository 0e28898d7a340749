#!/bin/bash
# Many files with a small descriptor budget: every staging inode the kernel
# remembers holds an fd in the daemon, so without reclaim a zarr tree larger
# than the fd limit fails with EMFILE (the brief's case: 100k chunks, limit 20k).
. "$(dirname "$0")/lib.sh"

# the daemon (started from this shell) gets at most 400 descriptors
ulimit -Sn 400 && ulimit -Hn 400 || { skip "cannot lower the fd limit"; exit 77; }
# 3000 chunks; 1000 on s3, where each is also uploaded, copied and deleted
# (about 10 requests to the test server per chunk): still 2.5x the fd budget
N=3000
[ "$BACKEND" = s3 ] && N=1000
mount_fs || exit 1
D=$S/lab/many
check "mkdir" mkdir -p "$D"

out=$($PY - "$D/z" "$N" <<'PYEOF' 2>&1
import sys, numpy as np, zarr
n = int(sys.argv[2])
z = zarr.open(sys.argv[1], mode="w", shape=(n, 16), chunks=(1, 16), dtype="i8")
z[:] = np.arange(n * 16).reshape(n, 16)
r = zarr.open(sys.argv[1], mode="r")
assert (r[:] == np.arange(n * 16).reshape(n, 16)).all()
print("ok")
PYEOF
)
check_eq "$N-chunk zarr written and read back with 400 fds" ok "$out"
check_eq "all chunks listed" $((N + 1)) "$(ls -A "$D/z" | wc -l)"
fds=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
check "daemon holds at most 400 fds (holds $fds)" test "$fds" -le 400
check_eq "commit the $((N + 1))-file tree" OK "$(commit "$D/z" '{"field":"raw","key":{"id":1},"token":"manyMANY"}')"
check_eq "receipt item_count" $((N + 1)) "$(json_get item_count <"$D/.receipts/z.json")"
out=$($PY - "$MNT/_schema/lab/many/id=1/raw_manyMANY" "$N" <<'PYEOF' 2>&1
import sys, numpy as np, zarr
n = int(sys.argv[2])
r = zarr.open(sys.argv[1], mode="r")
assert (r[:] == np.arange(n * 16).reshape(n, 16)).all()
print("ok")
PYEOF
)
check_eq "canonical copy reads back" ok "$out"

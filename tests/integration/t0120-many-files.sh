#!/bin/bash
# Directories with more entries than the daemon has descriptors: inodes hold
# none, so a zarr array of many chunks in one directory is written, listed
# (ls -l, find, os.scandir, twice: the second listing once hung the mount),
# committed and read back under a small descriptor limit; then again with
# reclaim forced (max_inodes far below the entry count) and without kernel
# file handles (inodes found by parent and name).
. "$(dirname "$0")/lib.sh"

# the daemon (started from this shell) gets at most $FDS descriptors; on s3
# every chunk is also uploaded (about 10 requests to the test server each)
N=5000 FDS=1024
[ "$BACKEND" = s3 ] && N=1200 FDS=400
ulimit -Sn $FDS && ulimit -Hn $FDS || { skip "cannot lower the fd limit"; exit 77; }
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
check_eq "$N-chunk zarr written and read back with $FDS fds" ok "$out"

# every way of listing sees every chunk, with attributes, twice over
want=$(
	for ((i = 0; i < N; i++)); do echo "$i.0"; done
	echo .zarray
)
want_sorted=$(sort <<<"$want")
list_all() { # label
	local got
	got=$(ls -lA "$D/z" | awk 'NR > 1 { print $NF }' | sort)
	check_eq "$1: ls -l lists all $((N + 1)) entries" "$want_sorted" "$got"
	check_eq "$1: ls -l shows a size for every entry" 0 \
		"$(ls -lA "$D/z" | awk 'NR > 1 && $5 <= 0 { n++ } END { print n + 0 }')"
	got=$(find "$D/z" -mindepth 1 -printf '%f %s\n' | awk '{ print $1 }' | sort)
	check_eq "$1: find lists all entries" "$want_sorted" "$got"
	got=$($PY - "$D/z" <<'PYEOF'
import os, sys
names = []
with os.scandir(sys.argv[1]) as it:
    for e in it:
        st = e.stat(follow_symlinks=False)
        assert st.st_size > 0, e.name
        names.append(e.name)
print("\n".join(sorted(names)))
PYEOF
)
	check_eq "$1: os.scandir + stat sees all entries" "$want_sorted" "$got"
}
list_all "first listing"
list_all "second listing"
fds=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
# inodes hold no descriptors: what the daemon holds is bounded by its directory cache
check "daemon holds few descriptors with $((N + 1)) inodes known (holds $fds)" test "$fds" -le $((FDS / 8 + 48))

# reclaim (the kernel is asked to drop idle inodes) and no file handles
remount -o max_inodes=500,inode_handles=0 || exit 1
list_all "reclaiming, by name"
list_all "reclaiming, by name, again"
st=$(xget "$MNT" user.stagefs.status)
check "the daemon finds inodes by name now ($st)" grep -q "file-handles no" <<<"$st"
check "the daemon asked the kernel to drop idle inodes ($st)" \
	test "$(sed -E 's/.*reclaimed ([0-9]+).*/\1/' <<<"$st")" -gt 0
# the kernel forgets asynchronously; what stays known is near the bound, not N
# (FORGETs still on their way when the listing ends: give them up to 5 s)
for _ in $(seq 50); do
	[ "$(sed -E 's/^inodes ([0-9]+).*/\1/' <<<"$st")" -le 1500 ] && break
	sleep 0.1
	st=$(xget "$MNT" user.stagefs.status)
done
check "the daemon keeps near max_inodes inodes, not $N ($st)" \
	test "$(sed -E 's/^inodes ([0-9]+).*/\1/' <<<"$st")" -le 1500
out=$($PY - "$D/z" "$N" <<'PYEOF' 2>&1
import sys, numpy as np, zarr
n = int(sys.argv[2])
r = zarr.open(sys.argv[1], mode="r")
assert (r[:] == np.arange(n * 16).reshape(n, 16)).all()
print("ok")
PYEOF
)
check_eq "reclaiming, by name: the array reads back" ok "$out"
# link, rename and unlink by name with the inodes reclaimed under us (zarr 3's pattern)
check "write a temp file" sh -c "printf zarr3 >'$D/z/tmp.1'"
check "link it to its key" ln "$D/z/tmp.1" "$D/z/key.1"
check "drop the temp name" rm "$D/z/tmp.1"
check_eq "the key reads back" zarr3 "$(cat "$D/z/key.1")"
check "rename the key" mv "$D/z/key.1" "$D/z/key.2"
check_eq "the renamed key reads back" zarr3 "$(cat "$D/z/key.2")"
check "and goes" rm "$D/z/key.2"

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
check_eq "canonical listing has every chunk" $((N + 1)) "$(ls -A "$MNT/_schema/lab/many/id=1/raw_manyMANY" | wc -l)"

#!/bin/bash
# SIGKILL of the daemon while h5py and zarr write hard (several writers at
# once, as an acquisition does): after the remount everything that was
# acknowledged as durable is intact.  A zarr chunk counts once it was written,
# fsynced and its directory fsynced; an HDF5 file once it was closed and
# fsynced (on s3 an fsync uploads: those bytes are in the bucket itself).  The writers log each acknowledgement outside the mount, after the
# fsync returned; the daemon is killed while they are still writing.
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1
D=$S/lab/heavy
mkdir -p "$D"
ACK=$T/acked
: >"$ACK"

# writer KIND: zarr (chunks of a 1-D array, one per fsync) or h5 (whole files)
writer() {
	$PY - "$D" "$1" "$ACK" <<'PYEOF' >"$T/writer-$1.log" 2>&1
import os, sys, numpy as np
d, kind, ack = sys.argv[1], sys.argv[2], sys.argv[3]
log = open(ack, "a", buffering=1)
def fsync_path(p, dir=False):
    fd = os.open(p, os.O_RDONLY | (os.O_DIRECTORY if dir else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
try:
    if kind == "zarr":
        import zarr
        n, c = 100000, 1000
        z = zarr.open(d + "/frames.zarr", mode="w", shape=(n,), chunks=(c,), dtype="i8")
        fsync_path(d + "/frames.zarr/.zarray")
        fsync_path(d + "/frames.zarr", True)
        for i in range(n // c):
            z[i * c:(i + 1) * c] = np.arange(i * c, (i + 1) * c) * 7
            fsync_path("%s/frames.zarr/%d" % (d, i))
            fsync_path(d + "/frames.zarr", True)
            log.write("zarr %d\n" % i)
    else:
        import h5py
        for i in range(1000):
            p = "%s/rec%04d.h5" % (d, i)
            with h5py.File(p, "w") as f:
                f.create_dataset("v", data=np.arange(200000, dtype="f4") + i, chunks=(20000,))
            fsync_path(p)
            fsync_path(d, True)
            log.write("h5 %d\n" % i)
except OSError as e:
    print("writer stopped:", e)
PYEOF
}
bg_start writer zarr
bg_start writer h5
# kill once both have acknowledged a good amount, while they keep writing
for _ in $(seq 300); do
	[ "$(grep -c '^zarr' "$ACK")" -ge 30 ] && [ "$(grep -c '^h5' "$ACK")" -ge 5 ] && break
	sleep 0.1
done
nz=$(grep -c '^zarr' "$ACK") nh=$(grep -c '^h5' "$ACK")
check "the writers acknowledged chunks and files before the kill ($nz chunks, $nh files)" \
	test "$nz" -ge 30 -a "$nh" -ge 5
kill_daemon
wait $BG_PIDS 2>/dev/null
check "the zarr writer was still writing when the daemon died" test "$(grep -c '^zarr' "$ACK")" -lt 100
mount_fs || exit 1

out=$($PY - "$D" "$ACK" <<'PYEOF' 2>&1
import sys, numpy as np, zarr, h5py
d, ack = sys.argv[1], sys.argv[2]
z = zarr.open(d + "/frames.zarr", mode="r")
bad = []
zs = [int(l.split()[1]) for l in open(ack) if l.startswith("zarr")]
hs = [int(l.split()[1]) for l in open(ack) if l.startswith("h5")]
for i in zs:
    if not (z[i * 1000:(i + 1) * 1000] == np.arange(i * 1000, (i + 1) * 1000) * 7).all():
        bad.append("zarr chunk %d" % i)
for i in hs:
    try:
        with h5py.File("%s/rec%04d.h5" % (d, i), "r") as f:
            if not (f["v"][:] == np.arange(200000, dtype="f4") + i).all():
                bad.append("rec%04d.h5: other values" % i)
    except OSError as e:
        bad.append("rec%04d.h5: %s" % (i, e))
print("ok %d %d" % (len(zs), len(hs)) if not bad else "lost: " + ", ".join(bad[:10]))
PYEOF
)
check "after the remount every acknowledged chunk and file is intact ($out)" grep -q '^ok' <<<"$out"
if [ "$BACKEND" = s3 ]; then
	# an fsync on s3 is an upload: what was acknowledged is in the bucket itself
	miss=0
	for i in $(awk '$1 == "zarr" { print $2 }' "$ACK"); do
		cmp -s "$D/frames.zarr/$i" "$(sobj "_staging/lab/heavy/frames.zarr/$i")" || miss=$((miss + 1))
	done
	for i in $(awk '$1 == "h5" { printf "%04d\n", $2 }' "$ACK"); do
		cmp -s "$D/rec$i.h5" "$(sobj "_staging/lab/heavy/rec$i.h5")" || miss=$((miss + 1))
	done
	check_eq "s3: every acknowledged chunk and file is in the bucket, byte for byte" 0 "$miss"
fi
check_eq "commit the zarr array as it stands" OK "$(commit "$D/frames.zarr" '{"field":"frames","key":{"id":1},"token":"killTOK1"}')"
check_eq "commit an acknowledged HDF5 file" OK "$(commit "$D/rec0000.h5" hash)"
unmount_fs
out=$("$STAGEFS" fsck "$SOURCE" -o "index=$INDEX${BACKEND_OPTS:+,$BACKEND_OPTS}" 2>&1)
check_eq "fsck is clean ($(tail -n 1 <<<"$out"))" 0 $?

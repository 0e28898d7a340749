#!/bin/bash
# s3 write-back staging (SPEC §3, upload=async, the default): close() returns
# once the bytes are safe in the local cache and the file goes up upload_delay
# seconds after its last close; fsync, a commit and the unmount upload at once;
# renames and removals of files not yet uploaded only change the queue (a zarr
# chunk written as a temporary name and renamed costs one PUT); a crash leaves
# the file in the cache, and the next mount uploads it.  upload=sync keeps
# close() waiting for the upload.  On s3rver the requests are counted by the
# test proxy; on Ceph RGW the bucket is looked at from outside.
. "$(dirname "$0")/lib.sh"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
if [ "$S3_SERVER" = s3 ]; then
	proxy_start || exit 1
fi
# reqs PATTERN: requests the server answered with 2xx whose line matches (s3rver's proxy only)
reqs() { grep -cE "^= $1 -> 20[0-9]" "$T/proxy.log"; }
# wait_key KEY [SECONDS]: until the bucket holds staged KEY (0) or the time is up (1)
wait_key() {
	local end=$((SECONDS + ${2:-15}))
	while [ $SECONDS -lt $end ]; do
		skeys "$(dirname "$1")" | grep -qxF "$1" && return 0
		sleep 0.2
	done
	return 1
}
has_key() { skeys "$(dirname "$1")" | grep -qxF "$1"; }
lacks_key() { ! has_key "$1"; }

mount_fs -o upload_delay=2 || exit 1
D=$S/lab/wb
K=_staging/lab/wb
check "mkdir" mkdir -p "$D"

# --- a closed file: in the cache at once, in the bucket after the delay
head -c 100000 /dev/urandom >"$T/a.ref"
cp "$T/a.ref" "$D/a.bin"
check_eq "its status right after close" uploading "$(xget "$D/a.bin" user.stagefs.status)"
check "not in the bucket yet" lacks_key $K/a.bin
check "it reads back at once" cmp "$T/a.ref" "$D/a.bin"
check "in the bucket within the delay and a little" wait_key $K/a.bin
check "with its bytes" cmp "$T/a.ref" "$(sobj $K/a.bin)"
sleep 0.3
check_eq "its status then" staged "$(xget "$D/a.bin" user.stagefs.status)"

# --- zarr chunks (written as temporary names, renamed): one PUT each, nothing else
[ "$S3_SERVER" = s3 ] && : >"$T/proxy.log" && c0=$(pstat copies)
out=$(zarr_rows "$D/z.zarr" 2>&1)
check_eq "zarr writes 20 chunks and .zarray" 21 "$out"
check "the last chunk reaches the bucket" wait_key $K/z.zarr/19.0
sleep 1
check_eq "the bucket holds exactly the 21 final names" \
	"$(cd "$D/z.zarr" && ls -A | sort | sed "s|^|$K/z.zarr/|")" "$(skeys $K/z.zarr | sort)"
if [ "$S3_SERVER" = s3 ]; then
	check_eq "one PUT per file" 21 "$(reqs "PUT [^ ]*/z\\.zarr/[^ ?]*")"
	check_eq "no copy (a rename of an unsent file is local)" "$c0" "$(pstat copies)"
	check_eq "no DELETE" 0 "$(grep -cE '^DELETE [^ ]*/z\.zarr/' "$T/proxy.log")"
fi
check_eq "the chunks read back" 190.0 "$(zarr_rows_sum "$D/z.zarr")"

# --- an upload the server refuses is tried again later; the file waits in the cache
if [ "$S3_SERVER" = s3 ]; then
	prules '[{"match": "^PUT .*/_staging/lab/wb/r\\.bin$", "times": 1, "status": 403, "code": "AccessDenied"}]'
	head -c 50000 /dev/urandom >"$T/r.ref"
	check "close returns although the upload will fail" cp "$T/r.ref" "$D/r.bin"
	check "it reaches the bucket on a later try" wait_key $K/r.bin 20
	check "with its bytes" cmp "$T/r.ref" "$(sobj $K/r.bin)"
	check_eq "the first try was refused, the second stored it" 2 \
		"$(grep -cE '^PUT [^ ]*/_staging/lab/wb/r\.bin$' "$T/proxy.log")"
	check "the daemon log says why the first failed" grep -q "cannot store staged 'lab/wb/r.bin'" "$T/daemon.log"
	prules '[]'
	rm "$D/r.bin"
	check "a removed uploaded file leaves the bucket" lacks_key $K/r.bin
fi

# --- commit right after the writes: what was never uploaded goes from the cache
# straight to the canonical keys (no staging PUT, no copy, no delete), the commit is whole
head -c 300000 /dev/urandom >"$T/c.ref"
cp "$T/c.ref" "$D/c.bin"
[ "$S3_SERVER" = s3 ] && : >"$T/proxy.log" && c0=$(pstat copies)
check_eq "commit a file still queued" OK "$(commit "$D/c.bin" hash)"
P=$(json_get path <"$D/.receipts/c.bin.json")
check "the canonical object holds its bytes" cmp "$T/c.ref" "$(sobj "$P")"
if [ "$S3_SERVER" = s3 ]; then
	check_eq "one PUT, to the canonical key" 1 "$(reqs "PUT [^ ]*/$P")"
	check_eq "no staging PUT, copy or DELETE of it" "0 0 0" \
		"$(reqs 'PUT [^ ]*/_staging/lab/wb/c\.bin') $(($(pstat copies) - c0)) $(reqs 'DELETE [^ ]*/_staging/lab/wb/c\.bin')"
fi
$PY - "$D/t.zarr" <<'PYEOF'
import sys, numpy as np, zarr
z = zarr.open(sys.argv[1], mode="w", shape=(10, 64), chunks=(1, 64), dtype="i4")
z[:] = np.arange(640, dtype="i4").reshape(10, 64)
PYEOF
[ "$S3_SERVER" = s3 ] && : >"$T/proxy.log" && c0=$(pstat copies)
check_eq "commit a zarr tree just written" OK \
	"$(commit "$D/t.zarr" '{"field":"t","key":{"id":1},"token":"wbTOK001"}')"
if [ "$S3_SERVER" = s3 ]; then
	# 10 chunks and .zarray, each a temporary name renamed, then committed
	check_eq "one PUT per chunk, to its canonical key" 11 \
		"$(reqs 'PUT [^ ]*/_schema/lab/wb/id(=|%3D)1/t_wbTOK001\.zarr/[^ ?]*')"
	check_eq "nothing staged: no PUT, copy or DELETE under _staging" "0 0 0" \
		"$(reqs 'PUT [^ ]*/_staging/lab/wb/t\.zarr') $(($(pstat copies) - c0)) $(grep -cE '^(DELETE|POST) [^ ]*/_staging/lab/wb/t\.zarr' "$T/proxy.log")"
fi
check_eq "the canonical tree reads back" 204480 \
	"$($PY -c 'import sys, zarr; print(int(zarr.open(sys.argv[1], mode="r")[:].sum()))' \
		"$MNT/_schema/lab/wb/id=1/t_wbTOK001.zarr")"
sleep 3
check_eq "nothing of the tree is left staged in the bucket" "" "$(skeys $K/t.zarr)"
check "nor of the file" lacks_key $K/c.bin

# --- a tree already in the bucket: one server-side copy per object, the staged copies
# removed in one batch
mkdir -p "$D/up"
for i in 1 2 3 4 5 6 7 8; do printf 'up %s\n' $i >"$D/up/f$i.bin"; done
uploaded "$D"/up/f*.bin
check_eq "the tree went up after the delay" 8 "$(skeys $K/up | grep -c .)"
[ "$S3_SERVER" = s3 ] && : >"$T/proxy.log" && c0=$(pstat copies)
check_eq "commit the uploaded tree" OK "$(commit "$D/up" '{"field":"u","key":{"id":2},"token":"wbTOK002"}')"
if [ "$S3_SERVER" = s3 ]; then
	check_eq "one copy per object" 8 "$(($(pstat copies) - c0))"
	# the staged copies go in one multi-object delete (up to 1000 keys a request)
	check_eq "and fewer deletes than objects: one batch, no DELETE each" "1 0" \
		"$(reqs 'POST [^ ]*\?delete=?') $(reqs 'DELETE [^ ]*/_staging/lab/wb/up/')"
fi
check_eq "nothing of it is left staged" "" "$(skeys $K/up)"
check_eq "its canonical objects" 8 "$(skeys _schema/lab/wb/id=2/u_wbTOK002 | grep -c .)"
unmount_fs

# --- fsync uploads at once; rename, unlink of queued files; unmount flushes
mount_fs -o upload_delay=600 || exit 1
[ "$S3_SERVER" = s3 ] && : >"$T/proxy.log" && c0=$(pstat copies)
check "write and fsync" $PY -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"synced\n"); os.fsync(fd); os.close(fd)' "$D/f.txt"
check "an fsynced file is in the bucket when fsync returns" has_key $K/f.txt
echo gone >"$D/gone.txt"
rm "$D/gone.txt"
echo moved >"$D/m1.txt"
mv "$D/m1.txt" "$D/m2.txt"
mkdir -p "$D/dir1/sub"
echo deep >"$D/dir1/sub/x.txt"
mv "$D/dir1" "$D/dir2"
mkdir -p "$D/tmpdir"
echo t >"$D/tmpdir/y.txt"
mv "$D/tmpdir" "$D/tmpdir2"
rm -r "$D/tmpdir2"
# a rename over a file already in the bucket (rclone #4293)
echo new >"$D/over.tmp"
mv "$D/over.tmp" "$D/a.bin"
check_eq "before the delay nothing else is in the bucket" \
	"$K/a.bin $K/f.txt $K/z.zarr" "$(skeys $K | sed -E "s|^($K/z\.zarr)/.*|\\1|" | sort -u | xargs)"
if [ "$S3_SERVER" = s3 ]; then
	check_eq "one PUT was sent (f.txt's) and no copy" "1 0" \
		"$(reqs 'PUT [^ ]*') $(($(pstat copies) - c0))"
fi
unmount_fs
check_eq "the unmount uploaded what was queued, under the final names" \
	"$K/a.bin $K/dir2/sub/x.txt $K/f.txt $K/m2.txt $K/z.zarr" \
	"$(skeys $K | sed -E "s|^($K/z\.zarr)/.*|\\1|" | sort -u | xargs)"
check_eq "the renamed-over file has the new bytes" new "$(cat "$(sobj $K/a.bin)")"
check_eq "the file in the renamed folder" deep "$(cat "$(sobj $K/dir2/sub/x.txt)")"

# --- a crash: the closed file stays in the cache, the next mount uploads it
mount_fs -o upload_delay=600 || exit 1
head -c 200000 /dev/urandom >"$T/k.ref"
cp "$T/k.ref" "$D/k.bin"
kill_daemon
check "not in the bucket after the crash" lacks_key $K/k.bin
mount_fs -o upload_delay=600 || exit 1
check "the next mount uploaded it" has_key $K/k.bin
check "with its bytes" cmp "$T/k.ref" "$(sobj $K/k.bin)"
check "and the mount shows it" cmp "$T/k.ref" "$D/k.bin"
unmount_fs

# --- upload=sync: close waits for the upload
mount_fs -o upload=sync || exit 1
echo now >"$D/s.txt"
check "with upload=sync a closed file is in the bucket when close returns" has_key $K/s.txt
check_eq "and its status says staged" staged "$(xget "$D/s.txt" user.stagefs.status)"
unmount_fs
out=$("$STAGEFS" -f -o "index=$INDEX,$BACKEND_OPTS,upload=later" "$SOURCE" "$MNT" 2>&1)
check_eq "upload=later is refused (exit 2)" 2 $?
check "naming the values" grep -q "not async or sync" <<<"$out"

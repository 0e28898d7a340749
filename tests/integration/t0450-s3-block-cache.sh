#!/bin/bash
# Canonical objects on s3 are read through a local block cache: they never
# change, so once read they stay readable from the cache (here: with the
# server stopped), byte for byte; misses are ranged GETs.
. "$(dirname "$0")/lib.sh"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
mount_fs || exit 1
D=$S/lab/blk
check "mkdir" mkdir -p "$D"
head -c $((3 << 20 | 12345)) /dev/urandom >"$T/obj.ref"
cp "$T/obj.ref" "$D/obj.bin"
check_eq "commit" OK "$(commit "$D/obj.bin" '{"field":"raw","key":{"id":1},"token":"blockTOK"}')"
C=$MNT/_schema/lab/blk/id=1/raw_blockTOK.bin
check "first read (from the server)" cmp "$T/obj.ref" "$C"
check_eq "four 1 MiB blocks and the size are cached" 5 \
	"$(find "$T/cache" -path '*/blocks/*' -type f | wc -l)"
# drop the kernel's page cache (dentries and attributes stay), stop the server
sync
echo 1 >/proc/sys/vm/drop_caches
bash "$REPO_ROOT/scripts/s3-server" stop "$S3_DIR" >/dev/null 2>&1
check "second read with the server stopped (from the block cache)" cmp "$T/obj.ref" "$C"
out=$($PY -c 'import os,sys; f=open(sys.argv[1],"rb"); f.seek(2*1024*1024-5); print(f.read(10).hex())' "$C")
check_eq "a read across a block boundary" "$($PY -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d[2*1024*1024-5:2*1024*1024+5].hex())' "$T/obj.ref")" "$out"
bash "$REPO_ROOT/scripts/s3-server" start "$S3_DIR" "$S3_PORT" stagefs-test >/dev/null 2>&1

#!/bin/bash
# The s3 backend against Ceph RGW (scripts/rgw-server), whatever server the
# other s3 tests use: what a real server does that s3rver and the test proxy
# only imitate.
#  - the mount's probes find that RGW honours If-None-Match on PUT but not on
#    CompleteMultipartUpload, and commits still never replace;
#  - fsck lists the server's own incomplete multipart uploads and --repair
#    aborts them (RGW implements ListMultipartUploads / AbortMultipartUpload);
#  - promotion claims: one left by a dead promoter of this host is taken over,
#    one held by a live promoter is waited for.
STAGEFS_S3_SERVER=rgw
. "$(dirname "$0")/lib.sh"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
MIB=1048576
S3C="$PY $TESTS_DIR/s3c.py"
export SFS_S3_COPY_PART_SIZE=$((5 * MIB))
mount_fs || exit 1
D=$S/lab/rg
check "mkdir" mkdir -p "$D"
check "the mount found RGW honours If-None-Match on PUT" \
	bash -c "! grep -q \"ignores If-None-Match;\" '$T/daemon.log'"
check "and that it ignores it on CompleteMultipartUpload" \
	grep -q "ignores If-None-Match on CompleteMultipartUpload" "$T/daemon.log"

# --- no-replace on RGW: a file (copied in parts) and a tree onto taken keys
head -c $((12 * MIB)) /dev/urandom >"$T/a.ref"
cp "$T/a.ref" "$D/a.bin"
check_eq "commit a 12 MiB file onto a fixed key" OK \
	"$(commit "$D/a.bin" '{"field":"f","key":{"id":1},"token":"rgwTOK01"}')"
head -c $((12 * MIB)) /dev/urandom >"$T/b.ref"
cp "$T/b.ref" "$D/b.bin"
check_eq "another file onto that key is refused" EEXIST \
	"$(commit "$D/b.bin" '{"field":"f","key":{"id":1},"token":"rgwTOK01"}')"
check "the first object is untouched" cmp "$T/a.ref" "$(sobj _schema/lab/rg/id=1/f_rgwTOK01.bin)"
mkdir -p "$D/t1.zarr" "$D/t2.zarr"
echo one >"$D/t1.zarr/0"
echo two >"$D/t2.zarr/0"
check_eq "commit a tree onto a fixed key" OK \
	"$(commit "$D/t1.zarr" '{"field":"z","key":{"id":1},"token":"rgwTOK02"}')"
check_eq "another tree onto that key is refused" EEXIST \
	"$(commit "$D/t2.zarr" '{"field":"z","key":{"id":1},"token":"rgwTOK02"}')"
check_eq "the first tree is untouched" one "$(cat "$(sobj _schema/lab/rg/id=1/z_rgwTOK02.zarr/0)")"
check_eq "no claim is left behind" "" "$(skeys .stagefs/claims)"

# --- a claim a killed promoter of this host left (its pid is gone) is taken over
claim_of() { printf '%s' "p/$1" | sha256sum | cut -d' ' -f1; }
K=_schema/lab/rg/id=2/f_rgwTOK03.bin
sleep 0 &
dead=$!
wait $dead
printf 'what=stagefs promotion claim\nkey=p/%s\nhost=%s\npid=%s\n' "$K" "$(hostname)" "$dead" >"$T/claim"
check "plant a dead promoter's claim" $S3C put "p/.stagefs/claims/$(claim_of "$K")" "$T/claim"
echo c >"$D/c.bin"
check_eq "a commit onto its key takes it over" OK \
	"$(commit "$D/c.bin" '{"field":"f","key":{"id":2},"token":"rgwTOK03"}')"
check "the daemon said so" grep -q "taking over a stale promotion claim on 'p/$K'" "$T/daemon.log"
check_eq "the object is there" c "$(cat "$(sobj "$K")")"
check_eq "and the claim is gone" "" "$(skeys .stagefs/claims)"

# --- a live promoter's claim (another host's, fresh) is waited for
K=_schema/lab/rg/id=3/f_rgwTOK04.bin
printf 'what=stagefs promotion claim\nkey=p/%s\nhost=elsewhere\npid=1\n' "$K" >"$T/claim"
check "plant a live claim" $S3C put "p/.stagefs/claims/$(claim_of "$K")" "$T/claim"
echo d >"$D/d.bin"
commit "$D/d.bin" '{"field":"f","key":{"id":3},"token":"rgwTOK04"}' >"$T/dout" &
cpid=$!
sleep 1.5
check "the commit waits while the claim is held" kill -0 $cpid
check "the key is still free" test ! -e "$(sobj "$K")"
check "the holder lets go" $S3C delete "p/.stagefs/claims/$(claim_of "$K")"
wait $cpid
check_eq "then the commit goes through" OK "$(cat "$T/dout")"
check_eq "the object is there" d "$(cat "$(sobj "$K")")"
unmount_fs

# --- fsck and a multipart upload a killed writer left on the server
fsck_s3() { "$STAGEFS" fsck "$SOURCE" -o "index=$INDEX,$BACKEND_OPTS" "$@" 2>&1; }
out=$(fsck_s3)
check_eq "fsck is clean ($out)" 0 $?
head -c $((6 * MIB)) /dev/urandom >"$T/part"
uid=$($S3C mpu p/_staging/lab/rg/stale.bin "$T/part")
check "an upload is open on the server" grep -q "^p/_staging/lab/rg/stale.bin $uid\$" <<<"$($S3C uploads p/)"
out=$(fsck_s3)
check "a young upload is not a problem ($out)" bash -c "! grep -q 'incomplete multipart upload' <<<'$out'"
out=$(fsck_s3 --uploads-older-than 0)
check_eq "fsck --uploads-older-than 0 exits 1" 1 $?
check "it names the upload ($out)" \
	grep -q "an incomplete multipart upload of '_staging/lab/rg/stale.bin' (begun " <<<"$out"
out=$(fsck_s3 --uploads-older-than 0 --repair)
check "fsck --repair aborts it ($out)" \
	grep -q "repaired: aborted the incomplete multipart upload of '_staging/lab/rg/stale.bin'" <<<"$out"
check_eq "the server has no upload left" "" "$($S3C uploads p/)"
out=$(fsck_s3 --uploads-older-than 0)
check_eq "fsck is clean again ($out)" 0 $?

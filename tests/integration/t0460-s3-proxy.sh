#!/bin/bash
# The s3 backend against a server that checks what s3rver does not: every
# request goes through tests/integration/s3proxy.py, which verifies each SigV4
# signature (an implementation independent of ours), implements If-None-Match
# and UploadPartCopy, and injects faults on demand: 500s, 503 SlowDown, slow
# answers, connections reset mid-upload, a 403, and s3rver stopped in the
# middle of a multipart upload.  Every fault is retried (or fails loudly) and
# nothing is lost or stored twice.
. "$(dirname "$0")/lib.sh"
# close() uploading (and reporting what the upload met) is upload=sync's
# contract; write-back (the default) is t0485's
BACKEND_OPTS="$BACKEND_OPTS,upload=sync"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
MIB=1048576
# 5 MiB parts (S3's minimum), multipart above that; copies in 5 MiB parts;
# a transfer that stalls for 1 s is abandoned and retried; retries span ~25 s
export SFS_S3_PART_SIZE=$((5 * MIB)) SFS_S3_MULTIPART_THRESHOLD=$((5 * MIB))
export SFS_S3_COPY_PART_SIZE=$((5 * MIB)) SFS_S3_STALL_TIMEOUT_S=1
export SFS_S3_MAX_ATTEMPTS=9 SFS_S3_BACKOFF_MS=100

proxy_start || exit 1

# the verifier is not vacuous: a wrong secret is refused (and the mount says so)
out=$(AWS_SECRET_ACCESS_KEY=wrong "$STAGEFS" -f -o "index=$INDEX,$BACKEND_OPTS" "$SOURCE" "$MNT" 2>&1)
check_eq "a wrong secret key: the mount exits 1" 1 "$?"
check "a wrong secret key: the message says access was denied" grep -qi "denied\|403" <<<"$out"
check "the proxy refused that signature" test "$(pstat sig_fail)" -ge 1
fails_before=$(pstat sig_fail)

mount_fs || exit 1
D=$S/lab/px
check "mkdir" mkdir -p "$D"
check "the server's If-None-Match was detected" \
	bash -c "! grep -q 'ignores If-None-Match' '$T/daemon.log'"

# --- 500 twice, then success
head -c 300000 /dev/urandom >"$T/a.ref"
prules '[{"match": "^PUT .*/_staging/lab/px/a\\.bin", "times": 2, "status": 500}]'
check "cp through two 500s" cp "$T/a.ref" "$D/a.bin"
check "the bucket has the bytes" cmp "$T/a.ref" "$(sobj _staging/lab/px/a.bin)"
check_eq "two 500s were injected" 2 "$(pstat faults)"

# --- 503 SlowDown on reads of a canonical object, then success
check_eq "commit a.bin (hash)" OK "$(commit "$D/a.bin" hash)"
H=$(ls "$MNT/_hash/lab")
prules '[{"match": "^GET .*/_hash/lab/", "times": 2, "status": 503, "code": "SlowDown"}]'
check "read a canonical object through two 503 SlowDown" cmp "$T/a.ref" "$MNT/_hash/lab/$H"
check_eq "four faults so far" 4 "$(pstat faults)"

# --- a slow answer (0.5 s: served) and a stalled one (8 s: abandoned, retried;
# libcurl measures the speed over the last 5 s, so a stall is noticed after ~6 s)
head -c 200000 /dev/urandom >"$T/s.ref"
prules '[{"match": "^PUT .*/s1\\.bin", "times": 1, "action": "delay", "delay": 0.5},
	 {"match": "^PUT .*/s2\\.bin", "times": 1, "action": "delay", "delay": 8}]'
check "a slow PUT is waited for" cp "$T/s.ref" "$D/s1.bin"
check "a stalled PUT is retried" cp "$T/s.ref" "$D/s2.bin"
check "slow: stored" cmp "$T/s.ref" "$(sobj _staging/lab/px/s1.bin)"
check "stalled: stored" cmp "$T/s.ref" "$(sobj _staging/lab/px/s2.bin)"
check_eq "the stalled PUT was sent twice, the slow one once" "1 2" \
	"$(grep -c '^PUT .*/s1\.bin$' "$T/proxy.log") $(grep -c '^PUT .*/s2\.bin$' "$T/proxy.log")"

# --- the connection reset in the middle of a part upload
head -c $((12 * MIB)) /dev/urandom >"$T/m.ref"
prules '[{"match": "^PUT .*/m\\.bin\\?partNumber=2&", "times": 1, "action": "reset"}]'
check "a 12 MiB multipart upload through a reset" cp "$T/m.ref" "$D/m.bin"
check "multipart: stored" cmp "$T/m.ref" "$(sobj _staging/lab/px/m.bin)"
check "part 2 was sent again" test "$(grep -c '^PUT .*/m\.bin?partNumber=2&' "$T/proxy.log")" -ge 2

# --- s3rver stopped in the middle of a multipart upload (the parts are held
# 2 s in the proxy, then meet a dead server), restarted 3 s later
head -c $((20 * MIB)) /dev/urandom >"$T/big.ref"
prules '[{"match": "^PUT .*/big\\.bin\\?partNumber=", "times": -1, "action": "delay", "delay": 2}]'
: >"$T/big.rc"
(
	if cp "$T/big.ref" "$D/big.bin" 2>"$T/big.err"; then echo OK >"$T/big.rc"; else echo FAIL >"$T/big.rc"; fi
) &
CP_PID=$!
for _ in $(seq 100); do grep -q '^PUT .*/big\.bin?partNumber=' "$T/proxy.log" && break; sleep 0.05; done
bash "$REPO_ROOT/scripts/s3-server" stop "$S3_DIR" >/dev/null 2>&1
sleep 3
bash "$REPO_ROOT/scripts/s3-server" start "$S3_DIR" "$S3_PORT" stagefs-test >/dev/null 2>&1
wait "$CP_PID"
check_eq "the upload outlived the outage (close returned 0)" OK "$(cat "$T/big.rc")"
check "the proxy saw the server gone" test "$(pstat upstream_down)" -ge 1
check "outage: stored" cmp "$T/big.ref" "$(sobj _staging/lab/px/big.bin)"
check_eq "outage: one object, nothing else stored" "_staging/lab/px/big.bin" \
	"$(skeys _staging/lab/px | grep big)"
prules '[]'

# --- a 403 is not retried: close() fails with EIO, nothing is lost
head -c 100000 /dev/urandom >"$T/d.ref"
prules '[{"match": "^PUT .*/denied\\.bin", "times": 1, "status": 403, "code": "AccessDenied"}]'
out=$(sysc write_file "$D/denied.bin" "$T/d.ref")
check_eq "403: close reports EIO" EIO "$out"
check_eq "403: sent once (not retried)" 1 "$(grep -c '^PUT .*/denied\.bin$' "$T/proxy.log")"
check "403: the daemon log names the request" grep -q "denied.bin.*403\|403.*denied.bin" "$T/daemon.log"
check "403: the bytes are kept" cmp "$T/d.ref" "$D/denied.bin"
out=$(sysc fsync "$D/denied.bin")
check_eq "403: fsync stores it afterwards" OK "$out"
check "403: stored" cmp "$T/d.ref" "$(sobj _staging/lab/px/denied.bin)"

# --- a hash commit: a conditional multipart copy (UploadPartCopy + If-None-Match)
upc=$(pstat upload_part_copy)
check_eq "commit the 12 MiB file (hash)" OK "$(commit "$D/m.bin" hash)"
HM=$(json_get path <"$D/.receipts/m.bin.json")
check "the canonical object has the bytes" cmp "$T/m.ref" "$MNT/$HM"
check "in the bucket too" cmp "$T/m.ref" "$(sobj "$HM")"
check_eq "three parts were copied server-side (UploadPartCopy)" 3 $(($(pstat upload_part_copy) - upc))
check "the copy was completed conditionally" test "$(pstat cond_created)" -ge 2
check_eq "no upload of the staged bytes again" 1 "$(grep -c '^POST .*/m\.bin?uploads' "$T/proxy.log")"
cp "$T/m.ref" "$D/m2.bin"
check_eq "commit the same bytes again" OK "$(commit "$D/m2.bin" hash)"
check_eq "dedup" true "$(json_get dedup <"$D/.receipts/m2.bin.json")"
check_eq "one canonical object" 1 "$(skeys _hash/lab | grep -c "${HM##*/}")"

# --- continuation tokens are signed right: a 1,100-object listing at remount
mkdir -p "$D/many"
$PY -c '
import os, sys
for i in range(1100):
    with open(os.path.join(sys.argv[1], "f%04d" % i), "w") as f:
        f.write(str(i))' "$D/many"
remount || exit 1
check "the listing needed a continuation token" grep -q 'continuation-token=' "$T/proxy.log"
check_eq "1100 staged files after the remount" 1100 "$(ls "$D/many" | wc -l)"
check_eq "no signature was refused since the wrong-secret check" "$fails_before" "$(pstat sig_fail)"
check "over a thousand signatures were verified" test "$(pstat sig_ok)" -ge 1100
check "the proxy did not fail (no traceback)" bash -c "! grep -q Traceback '$T/proxy.err'"

# --- a server without If-None-Match (501): HEAD-then-copy instead, commits work
# (another endpoint is another local cache: leave little to download)
rm -rf "$D/many"
unmount_fs
proxy_stop
proxy_start --no-conditional || exit 1
mount_fs || exit 1
check "the daemon noticed the missing If-None-Match" grep -q "ignores If-None-Match" "$T/daemon.log"
head -c 400000 /dev/urandom >"$T/n.ref"
cp "$T/n.ref" "$D/n.bin"
check_eq "commit without conditional writes" OK "$(commit "$D/n.bin" hash)"
check "stored" cmp "$T/n.ref" "$MNT/$(json_get path <"$D/.receipts/n.bin.json")"
check_eq "no conditional request was honoured" 0 "$(pstat cond_created)"

# --- a server that honours If-None-Match on PUT but not on CompleteMultipartUpload
# (Ceph RGW 16.2): a conditional multipart copy would overwrite, so promotion
# copies after a HEAD instead; what exists is still never replaced
unmount_fs
proxy_stop
proxy_start --ignore-conditional-complete || exit 1
mount_fs || exit 1
check "the daemon noticed CompleteMultipartUpload ignores If-None-Match" \
	grep -q "ignores If-None-Match on CompleteMultipartUpload" "$T/daemon.log"
check "its probe was the one conditional complete the proxy let through" test "$(pstat cond_complete_ignored)" -eq 1
head -c 300000 /dev/urandom >"$T/r.ref"
cp "$T/r.ref" "$D/r.bin"
check_eq "commit a file by hash" OK "$(commit "$D/r.bin" hash)"
RK=$(json_get path <"$D/.receipts/r.bin.json")
check "stored" cmp "$T/r.ref" "$MNT/$RK"
check_eq "no conditional complete after the probe" 1 "$(pstat cond_complete_ignored)"
printf 'first\n' >"$D/s1.txt"
check_eq "commit a schema file with a fixed token" OK "$(commit "$D/s1.txt" '{"field":"f","key":{"id":1},"token":"rgwTOK01"}')"
printf 'second\n' >"$D/s2.txt"
out=$(commit "$D/s2.txt" '{"field":"f","key":{"id":1},"token":"rgwTOK01"}')
check_eq "a commit onto that key is refused" EEXIST "$out"
check_eq "the first object is untouched" first "$(cat "$MNT/_schema/lab/px/id=1/f_rgwTOK01.txt")"

# --- a daemon killed in the middle of a multipart upload leaves the upload open
# (its parts stored): fsck names it once it is older than --uploads-older-than
# (default 24 h), --repair aborts it
prules '[{"match": "^PUT .*/stale\\.bin\\?partNumber=", "times": -1, "action": "delay", "delay": 20}]'
cp "$T/m.ref" "$D/stale.bin" 2>/dev/null &
cp_pid=$!
for _ in $(seq 100); do
	grep -q '^POST .*/stale\.bin?uploads' "$T/proxy.log" && break
	sleep 0.1
done
check "the upload of stale.bin began" grep -q '^POST .*/stale\.bin?uploads' "$T/proxy.log"
kill_daemon
wait "$cp_pid" 2>/dev/null
prules '[]'
fsck_s3() { "$STAGEFS" fsck "$SOURCE" -o "index=$INDEX,$BACKEND_OPTS" "$@" 2>&1; }
out=$(fsck_s3)
check "a young upload is not a problem (it may be a daemon's, in progress)" \
	bash -c "! grep -q 'incomplete multipart upload' <<<'$out'"
out=$(fsck_s3 --uploads-older-than 0)
check_eq "fsck --uploads-older-than 0 exits 1" 1 $?
check "it names the upload ($out)" grep -q "an incomplete multipart upload of '_staging/lab/px/stale.bin' (begun " <<<"$out"
check "the proxy listed the uploads" test "$(pstat list_uploads)" -ge 2
out=$(fsck_s3 --uploads-older-than 0 --repair)
check "fsck --repair aborts it ($out)" grep -q "repaired: aborted the incomplete multipart upload of '_staging/lab/px/stale.bin'" <<<"$out"
check_eq "the server was asked to abort it" 1 "$(pstat aborted_uploads)"
out=$(fsck_s3 --uploads-older-than 0)
check "no upload is left ($out)" bash -c "! grep -q 'incomplete multipart upload' <<<'$out'"
check_eq "--uploads-older-than with a bad value is a usage error" 2 \
	"$("$STAGEFS" fsck "$SOURCE" --uploads-older-than soon >/dev/null 2>&1; echo $?)"

# --- requests per zarr chunk (written as a temporary name, then renamed): the
# upload, one copy and one delete; no HEAD, no multi-object delete
mount_fs || exit 1
: >"$T/proxy.log"
out=$(zarr_rows "$D/req.zarr" 2>&1)
check_eq "zarr writes 20 chunks and .zarray" 21 "$out"
# counted by answers: a request s3rver fails now and then is retried
check_eq "2 PUTs per file (the upload, the copy)" 42 "$(grep -cE '^= PUT [^ ]*/req\.zarr/[^ ]* -> 200' "$T/proxy.log")"
check_eq "1 DELETE per file" 21 "$(grep -cE '^= DELETE [^ ]*/req\.zarr/[^ ]* -> 20[04]' "$T/proxy.log")"
check_eq "no HEAD" 0 "$(grep -cE '^HEAD [^ ]*/req\.zarr/' "$T/proxy.log")"
check_eq "no multi-object delete" 0 "$(grep -cE '^POST [^ ]*\?delete' "$T/proxy.log")"
check_eq "the chunks read back" 190.0 "$(zarr_rows_sum "$D/req.zarr")"
check "and are in the bucket under their names" test -n "$(skeys _staging/lab/px/req.zarr | grep '/19\.0$')"

# --- requests of a commit of that tree, uploaded already: one server-side copy
# per file (in parallel), the staged copies deleted in one multi-object delete
# (counted by answers: s3rver sometimes fails one and it is retried); no byte
# uploaded again
: >"$T/proxy.log"
check_eq "commit the zarr tree" OK "$(commit "$D/req.zarr" '{"field":"req","key":{"id":3},"token":"reqTOK01"}')"
check_eq "one copy per file" 21 "$(grep -cE '^= PUT [^ ]*/p/_schema/lab/px/id%3D3/req_reqTOK01\.zarr/[^ ]* -> 200' "$T/proxy.log")"
check_eq "no upload of the staged bytes (no multipart upload)" 0 "$(grep -cE '^POST [^ ]*\?uploads' "$T/proxy.log")"
check_eq "the staged copies go in one multi-object delete" 1 "$(grep -cE '^= POST [^ ]*\?delete= -> 200' "$T/proxy.log")"
check_eq "no other single DELETE than the promotion claim's" "1 1" \
	"$(grep -cE '^DELETE ' "$T/proxy.log") $(grep -cE '^DELETE [^ ]*/p/\.stagefs/claims/[0-9a-f]{64}$' "$T/proxy.log")"
check_eq "the claim was one conditional PUT" 1 \
	"$(grep -cE '^= PUT [^ ]*/p/\.stagefs/claims/[0-9a-f]{64} -> 200' "$T/proxy.log")"
check_eq "zarr reads the canonical tree" 190.0 "$(zarr_rows_sum "$MNT/_schema/lab/px/id=3/req_reqTOK01.zarr")"

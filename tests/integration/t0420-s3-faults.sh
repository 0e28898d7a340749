#!/bin/bash
# The s3 backend when the server misbehaves: an upload while the server is down
# fails loudly (never a silent success) and loses nothing; once the server is
# back the file is stored and commits; bad credentials fail the mount clearly.
. "$(dirname "$0")/lib.sh"
# close() uploading (and reporting what the upload met) is upload=sync's
# contract; write-back (the default) is t0485's
BACKEND_OPTS="$BACKEND_OPTS,upload=sync"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
# few, quick retries so that the outage below is noticed in seconds
export SFS_S3_MAX_ATTEMPTS=3 SFS_S3_BACKOFF_MS=50
mount_fs || exit 1
D=$S/lab/faults
check "mkdir" mkdir -p "$D"
head -c 300000 /dev/urandom >"$T/a.ref"
check "store a file while the server is up" cp "$T/a.ref" "$D/a.bin"

bash "$REPO_ROOT/scripts/s3-server" stop "$S3_DIR" >/dev/null 2>&1
head -c 500000 /dev/urandom >"$T/b.ref"
out=$(sysc write_file "$D/b.bin" "$T/b.ref")
check_eq "close during the outage reports EIO" EIO "$out"
check "the bytes are kept locally" cmp "$T/b.ref" "$D/b.bin"
check "the daemon log names the failed request" grep -q "b.bin" "$T/daemon.log"

bash "$REPO_ROOT/scripts/s3-server" start "$S3_DIR" "$S3_PORT" stagefs-test >/dev/null 2>&1
check "server back" curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$S3_PORT/"
out=$(sysc fsync "$D/b.bin")
check_eq "fsync stores it once the server is back" OK "$out"
check "the bucket has the bytes" cmp "$T/b.ref" "$(sobj _staging/lab/faults/b.bin)"
check_eq "commit it" OK "$(commit "$D/b.bin" hash)"
check_eq "one staged object left (a.bin), nothing duplicated" "_staging/lab/faults/a.bin" \
	"$(skeys _staging/lab/faults)"
check "the earlier file is untouched" cmp "$T/a.ref" "$(sobj _staging/lab/faults/a.bin)"

# a staged path whose key would pass S3's 1024 bytes: ENAMETOOLONG, not EIO after retries
long=$D
for i in 1 2 3 4 5; do long=$long/$(printf 'd%.0s' $(seq 1 200)); done
mkdir -p "$long"
out=$($PY - "$long/f" <<'PYEOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"x")
try:
    os.close(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
PYEOF
)
check_eq "close of a file whose key is over 1024 bytes" ENAMETOOLONG "$out"
check_eq "its bytes stay in staging" x "$(cat "$long/f")"

# an unknown access key: the mount fails before mounting, naming the endpoint
unmount_fs
out=$(AWS_ACCESS_KEY_ID=NOSUCHKEY "$STAGEFS" -f -o "index=$INDEX,$BACKEND_OPTS" "$SOURCE" "$MNT" 2>&1)
rc=$?
check_eq "bad credentials: exit 1" 1 "$rc"
ep=${SOURCE#*endpoint=http://}
ep=${ep%%&*}
check "bad credentials: the message names the endpoint" grep -q "$ep" <<<"$out"
check "bad credentials: the message says access was denied" grep -qi "denied\|403" <<<"$out"
check "nothing mounted" test -z "$(awk -v m="$MNT" '$2 == m' /proc/mounts)"

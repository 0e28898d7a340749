#!/bin/bash
# The crash proof of a commit: the daemon SIGKILLs itself at each named step
# of a commit (STAGEFS_FAULTS=<point>=kill, a test-only switch), for a file
# committed by hash and a directory tree committed by schema; after a
# remount each commit either happened in full (canonical bytes complete,
# receipt, index row, staged entry gone) or not at all (staged entry intact,
# nothing canonical, no receipt), the index and the store agree, and
# stagefs fsck of the unmounted store is clean.
. "$(dirname "$0")/lib.sh"

POINTS="commit-intent commit-promoted commit-copied commit-staged-removed commit-finished"
# s3: a promotion cut short after its first file (a tree then is partly canonical)
[ "$BACKEND" = s3 ] && POINTS="$POINTS s3-promote-part"
D=$S/lab/Crash
mount_fs || exit 1
mkdir -p "$D"
unmount_fs

b32() { $PY -c 'import base64,hashlib,sys; print(base64.b32encode(hashlib.md5(open(sys.argv[1],"rb").read()).digest()).decode().lower().rstrip("="))' "$1"; }
# every object the index knows is in the store, byte for byte by its md5 when it is a file
index_agrees() {
	$PY - "$INDEX" "$STORE" "$BACKEND" <<'PYEOF'
import hashlib, json, os, sqlite3, sys
db, store, backend = sys.argv[1:4]
def local(key):
    p = os.path.join(store, key)
    return p + "._S3rver_object" if backend == "s3" and not os.path.isdir(p) else p
bad = []
for path, meta in sqlite3.connect(db).execute("SELECT path, metadata FROM objects"):
    m = json.loads(meta)
    p = local(path)
    if m.get("is_dir"):
        if not os.path.isdir(os.path.join(store, path)):
            bad.append(path + ": missing")
    elif not os.path.exists(p):
        bad.append(path + ": missing")
    elif hashlib.md5(open(p, "rb").read()).hexdigest() != m.get("md5"):
        bad.append(path + ": other bytes")
for (n,) in sqlite3.connect(db).execute(
        "SELECT count(*) FROM jobs WHERE status IN ('pending','reserved')"):
    if n:
        bad.append("%d commit jobs left" % n)
print("\n".join(bad) if bad else "ok")
PYEOF
}

# crash_at POINT: mount with the daemon set to kill itself at POINT (the next commit reaches it)
crash_at() {
	export STAGEFS_FAULTS=$1=kill
	mount_fs || exit 1
	unset STAGEFS_FAULTS
}

for point in $POINTS; do
	f=f-$point d=d-$point
	# a file, by hash
	crash_at "$point"
	head -c 200000 /dev/urandom >"$T/$f.ref"
	cp "$T/$f.ref" "$D/$f"
	sync
	out=$(commit "$D/$f" hash)
	check "killed at $point during a hash commit (setxattr: $out)" test "$out" != OK
	kill_daemon
	mount_fs || exit 1
	check "$point, hash: the remount resumes the job and it ends" await_jobs
	hkey=_hash/lab/$(b32 "$T/$f.ref")
	if [ -e "$D/$f" ]; then
		check "$point, hash: not committed: the staged file is intact" cmp "$T/$f.ref" "$D/$f"
		check "$point, hash: and it has no receipt" test ! -e "$D/.receipts/$f.json"
		check_eq "$point, hash: it commits now" OK "$(commit "$D/$f" hash)"
	else
		check "$point, hash: committed: the receipt is there" test -f "$D/.receipts/$f.json"
	fi
	check "$point, hash: the canonical bytes are complete" cmp "$T/$f.ref" "$MNT/$hkey"
	check_eq "$point, hash: the index and the store agree" ok "$(index_agrees)"
	unmount_fs

	# a tree, by schema
	crash_at "$point"
	mkdir -p "$D/$d/sub"
	for i in 1 2 3; do head -c $((i * 5000)) /dev/urandom >"$D/$d/sub/$i"; done
	(cd "$D/$d" && find . -type f -exec md5sum {} + | sort) >"$T/$d.ref"
	sync
	value='{"field":"raw","key":{"p":"'"$point"'"},"token":"crashTOK"}'
	out=$(commit "$D/$d" "$value")
	check "killed at $point during a schema commit (setxattr: $out)" test "$out" != OK
	kill_daemon
	mount_fs || exit 1
	check "$point, tree: the remount resumes the job and it ends" await_jobs
	skey=_schema/lab/Crash/p=$point/raw_crashTOK
	if [ -d "$D/$d" ]; then
		check_eq "$point, tree: not committed: the staged tree is intact" "$(cat "$T/$d.ref")" \
			"$(cd "$D/$d" && find . -type f -exec md5sum {} + | sort)"
		check "$point, tree: nothing canonical" test ! -e "$MNT/$skey"
		check_eq "$point, tree: it commits now" OK "$(commit "$D/$d" "$value")"
	else
		check "$point, tree: committed: the receipt is there" test -f "$D/.receipts/$d.json"
	fi
	check_eq "$point, tree: the canonical tree is complete" "$(cat "$T/$d.ref")" \
		"$(cd "$MNT/$skey" && find . -type f -exec md5sum {} + | sort)"
	check_eq "$point, tree: the index and the store agree" ok "$(index_agrees)"
	unmount_fs
	out=$("$STAGEFS" fsck "$SOURCE" -o "index=$INDEX,$BACKEND_OPTS" 2>&1)
	check "$point: stagefs fsck finds nothing wrong ($(tail -n 3 <<<"$out"))" test $? = 0
done

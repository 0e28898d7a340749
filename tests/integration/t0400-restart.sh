#!/bin/bash
# Durability across a clean remount and across a SIGKILL of the daemon (SPEC §3,
# §4): fsynced staged files, canonical objects, receipts and metadata survive;
# a commit killed midway is either complete or not done at all.
. "$(dirname "$0")/lib.sh"

# fsync_write SRC DST: copy with an fsync before close
fsync_write() {
	$PY -c 'import os,sys; d=open(sys.argv[1],"rb").read(); fd=os.open(sys.argv[2],os.O_CREAT|os.O_WRONLY|os.O_TRUNC,0o644); os.write(fd,d); os.fsync(fd); os.close(fd)' "$1" "$2"
}

mount_fs || exit 1
D=$S/lab/Sess
mkdir -p "$D/sub"
for i in 1 2 3; do head -c $((i * 100000)) /dev/urandom >"$T/f$i"; done
fsync_write "$T/f1" "$D/f1"
fsync_write "$T/f2" "$D/sub/f2"
fsync_write "$T/f3" "$D/f3"
ln -s f1 "$D/link"
setfattr -n user.tag -v kept "$D/f1"
chmod 640 "$D/f1"
printf hello >"$D/hello"
check_eq "commit hello" OK "$(commit "$D/hello" hash)"
check_eq "commit f3 (schema)" OK "$(commit "$D/f3" '{"field":"raw","key":{"id":3},"token":"keepTOKN"}')"
meta_h=$(xget "$MNT/_hash/lab/lvauakv4jmvhnolrtwiraf6fsi" user.stagefs.metadata)
receipt_h=$(cat "$D/.receipts/hello.json")

# clean remount
remount || exit 1
check "f1 byte for byte after remount" cmp "$T/f1" "$D/f1"
check "sub/f2 byte for byte after remount" cmp "$T/f2" "$D/sub/f2"
check_eq "symlink after remount" f1 "$(readlink "$D/link")"
check_eq "user xattr after remount" kept "$(xget "$D/f1" user.tag)"
check_eq "mode after remount" 640 "$(stat -c %a "$D/f1")"
check_eq "hash object after remount" hello "$(cat "$MNT/_hash/lab/lvauakv4jmvhnolrtwiraf6fsi")"
check "schema object after remount" cmp "$T/f3" "$MNT/_schema/lab/Sess/id=3/raw_keepTOKN"
check_eq "receipt after remount" "$receipt_h" "$(cat "$D/.receipts/hello.json")"
check_eq "metadata xattr after remount" "$meta_h" "$(xget "$MNT/_hash/lab/lvauakv4jmvhnolrtwiraf6fsi" user.stagefs.metadata)"
check_eq "committed entry stays gone" "" "$(ls "$D" | grep -x -e hello -e f3)"
printf hello >"$D/hello2"
check_eq "dedup still known after remount" true "$(commit "$D/hello2" hash >/dev/null; json_get dedup <"$D/.receipts/hello2.json")"

# crash: SIGKILL after an fsynced write (and a plain closed write)
head -c 3000000 /dev/urandom >"$T/crash1"
fsync_write "$T/crash1" "$D/crash1"
printf 'closed, not fsynced' >"$D/crash2"
kill_daemon
check "no mount left after kill" bash -c "! awk -v m='$MNT' '\$2 == m {f=1} END {exit !f}' /proc/mounts"
mount_fs || exit 1
check "fsynced file intact after SIGKILL" cmp "$T/crash1" "$D/crash1"
check_eq "closed file present after SIGKILL (same host, page cache)" "closed, not fsynced" "$(cat "$D/crash2" 2>&1)"
check "objects intact after SIGKILL" cmp "$T/f3" "$MNT/_schema/lab/Sess/id=3/raw_keepTOKN"
check_eq "receipts intact after SIGKILL" "$receipt_h" "$(cat "$D/.receipts/hello.json")"
printf abc >"$D/after"
check_eq "commits work after a crash" OK "$(commit "$D/after" hash)"

# crash during a large directory commit: all or nothing
# make_tree DIR: 2000 small files in 40 dirs + 16 x 2 MiB files written out of order
# (no write-time digest: the commit has to read them, which gives a window to kill);
# on s3, where each file is an upload and a copy, 700 small files
NSMALL=2000
[ "$BACKEND" = s3 ] && NSMALL=700
make_tree() {
	$PY - "$1" "$NSMALL" <<'EOF'
import os, sys
root = sys.argv[1]
for i in range(int(sys.argv[2])):
    d = os.path.join(root, "g%02d" % (i % 40))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "c%04d" % i), "wb") as f:
        f.write(os.urandom(256 + i % 512))
for i in range(16):
    fd = os.open(os.path.join(root, "big%02d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, os.urandom(1 << 20), 1 << 20)
    os.pwrite(fd, os.urandom(1 << 20), 0)
    os.close(fd)
EOF
}
# commit_and_kill ENTRY VALUE EXTRA_DELAY: start the commit, wait until the entry's
# status says "committing", wait EXTRA_DELAY more, SIGKILL the daemon.  Prints the
# commit's result (OK / an errno name) as seen by the committing process.
commit_and_kill() {
	$PY - "$1" "$2" "$3" "$DAEMON_PID" <<'EOF'
import errno, os, signal, sys, time
entry, value, extra, daemon = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    try:
        os.setxattr(entry, "user.stagefs.commit", value.encode())
        res = "OK"
    except OSError as e:
        res = errno.errorcode.get(e.errno, str(e.errno))
    os.write(w, res.encode())
    os._exit(0)
os.close(w)
deadline = time.time() + 10
while time.time() < deadline:
    try:
        if os.getxattr(entry, "user.stagefs.status").startswith(b"committing"):
            break
    except OSError:
        break          # already gone: committed
time.sleep(extra)
os.kill(daemon, signal.SIGKILL)
os.waitpid(pid, 0)
print(os.read(r, 100).decode() or "none")
EOF
}
# tree_manifest DIR: md5 of the sorted "md5 path" list of every file (empty dir -> "missing")
tree_manifest() {
	[ -d "$1" ] || { echo missing; return; }
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 md5sum) | md5sum | cut -d' ' -f1
}

outcomes=
n=0
for delay in 0 0.08 0.3; do
	n=$((n + 1))
	name=big$n.zarr
	Z=$D/$name
	mkdir -p "$Z"
	make_tree "$T/src"
	cp -a "$T/src/." "$Z/"
	want=$(tree_manifest "$T/src")
	rm -rf "$T/src"
	# fsync what was written so the only question is the commit itself
	sync -f "$MNT/staging" 2>/dev/null || sync
	value="{\"field\":\"bulk\",\"key\":{\"run\":\"$name\"},\"token\":\"crashTOK\"}"
	commit_and_kill "$Z" "$value" "$delay" >"$T/commit$n.out"
	kill_daemon
	acked=$(cat "$T/commit$n.out")
	mount_fs || exit 1
	check "killed after ${delay}s: the remount resumes the job and it ends" await_jobs
	canon=$MNT/_schema/lab/Sess/run=$name/bulk_crashTOK.zarr
	staged=0 committed=0
	[ -d "$Z" ] && staged=1
	[ -d "$canon" ] && committed=1
	if [ "$acked" = OK ] && [ $committed = 0 ]; then
		fail "killed after ${delay}s: the commit had returned 0 but is not there after remount"
	fi
	if [ $staged = 1 ] && [ $committed = 0 ]; then
		check_eq "killed after ${delay}s: still fully staged" "$want" "$(tree_manifest "$Z")"
		check "  store has no canonical leftovers" test -z "$(skeys "_schema/lab/Sess/run=$name")"
		outcomes="$outcomes staged"
		check_eq "  and it commits now" OK "$(commit "$Z" "{\"field\":\"bulk\",\"key\":{\"run\":\"$name\"},\"token\":\"crashTOK\"}")"
	elif [ $staged = 0 ] && [ $committed = 1 ]; then
		check_eq "killed after ${delay}s: fully committed" "$want" "$(tree_manifest "$canon")"
		outcomes="$outcomes committed"
	else
		fail "killed after ${delay}s: staged=$staged committed=$committed (must be exactly one)"
		continue
	fi
	[ "$acked" = OK ] && acked_n=$((${acked_n:-0} + 1))
	check_eq "  receipt after the commit" "_schema/lab/Sess/run=$name/bulk_crashTOK.zarr" \
		"$(json_get path <"$D/.receipts/$name.json" 2>&1)"
	check_eq "  metadata of the object" $((NSMALL + 16)) \
		"$(xget "$canon" user.stagefs.metadata | json_get item_count)"
	check_eq "  the object holds the tree" "$want" "$(tree_manifest "$canon")"
done
echo "# crash-commit outcomes:$outcomes (acknowledged before the kill: ${acked_n:-0})"

# everything still consistent after a last clean remount
remount || exit 1
check "f1 still intact" cmp "$T/f1" "$D/f1"
check "crash1 still intact" cmp "$T/crash1" "$D/crash1"

#!/bin/bash
# Commits are durable jobs (SPEC §4, §6): an async commit returns once queued
# and completes on a worker; a job is watched running (a test-only stall at
# its start) through the entry's status and `stagefs jobs`; a second commit
# of an entry with a job queued is EBUSY; a failure keeps its reason in the
# job row, so the entry's status says it after a remount too; `stagefs jobs`
# lists it and --retry runs it again (on a mount and on an unmounted store);
# a job queued when the daemon died runs at the next mount.
. "$(dirname "$0")/lib.sh"

D=$S/lab/Jobs
st() { getfattr --only-values -n user.stagefs.status "$1" 2>/dev/null; }
jobs() { "$STAGEFS" jobs "$@" 2>&1; }

# an async hash commit, watched while it runs
export STAGEFS_FAULTS=commit-start@1=stall2
mount_fs || exit 1
unset STAGEFS_FAULTS
mkdir -p "$D"
head -c 300000 /dev/urandom >"$D/a.bin"
cp "$D/a.bin" "$T/a.ref"
check_eq "an async commit returns at once" OK "$(commit "$D/a.bin" '{"addressing":"hash","async":true}')"
check "the entry is still staged while its job waits or runs" test -f "$D/a.bin"
s=$(st "$D/a.bin")
check "its status says so ($s)" grep -qE "^(queued|committing [0-9]+/[0-9]+)$" <<<"$s"
out=$(jobs "$MNT")
check "stagefs jobs shows it running ($out)" grep -qE "^running +[0-9]+ +staging/lab/Jobs/a.bin" <<<"$out"
check "and counts it" grep -q "^pending 0, running 1" <<<"$out"
check_eq "a second commit of the entry while its job runs: EBUSY" EBUSY "$(commit "$D/a.bin" hash)"
check "the job ends" await_jobs
check "then the entry is committed: its receipt" test -f "$D/.receipts/a.bin.json"
check "and the staged file is gone" test ! -e "$D/a.bin"
hkey=$(json_get path <"$D/.receipts/a.bin.json")
check "the canonical bytes are the file's" cmp "$T/a.ref" "$MNT/$hkey"
out=$(jobs "$MNT" --all)
check "stagefs jobs --all lists the success with its key" grep -qE "^success +[0-9]+ +staging/lab/Jobs/a.bin -> $hkey" <<<"$out"

# stagefs commit --async
printf 'x' >"$D/c.txt"
out=$("$STAGEFS" commit "$D/c.txt" --hash --async 2>&1)
check_eq "stagefs commit --async exits 0" 0 $?
check "and says it queued ($out)" grep -q "^queued the commit of" <<<"$out"
await_jobs
check "that job ends committed" test -f "$D/.receipts/c.txt.json"

# a failure: its reason outlives the inode and the mount
mkdir -p "$D/tree"
printf 'd' >"$D/tree/f"
ln -s f "$D/tree/link"
check_eq "a tree with a symlink: EINVAL" EINVAL "$(commit "$D/tree" '{"field":"raw","key":{"id":1}}')"
s=$(st "$D/tree")
check "the status gives the reason ($s)" grep -q "^error: .*symlink" <<<"$s"
exec 7>"$D/open.bin"
check_eq "an async commit of a file open for writing is queued" OK \
	"$(commit "$D/open.bin" '{"addressing":"hash","async":true}')"
await_jobs
check "its job failed: open for writing" grep -q "^error: .*open for writing" <<<"$(st "$D/open.bin")"
exec 7>&-
unmount_fs
mount_fs || exit 1
check "after a remount the tree's status still says why" grep -q "^error: .*symlink" <<<"$(st "$D/tree")"
check "and so does the open file's" grep -q "^error: .*open for writing" <<<"$(st "$D/open.bin")"
out=$(jobs "$MNT")
check "stagefs jobs counts 2 errors" grep -q "error 2$" <<<"$out"
check "and lists each with its reason" grep -qE "^error +[0-9]+ +staging/lab/Jobs/open.bin  .*open for writing" <<<"$out"
# retry on the mount: the file is closed now
rm "$D/tree/link"
out=$(jobs "$MNT" --retry)
check_eq "stagefs jobs --retry on the mount exits 0 ($out)" 0 $?
await_jobs
check "the retried jobs ran: the file is committed" test -f "$D/.receipts/open.bin.json"
check "and the tree" test -f "$D/.receipts/tree.json"
check "no error left" grep -q "error 0$" <<<"$(jobs "$MNT")"
unmount_fs

# a job queued when the daemon died runs at the next mount
export STAGEFS_FAULTS=commit-start@1=stall5
mount_fs || exit 1
unset STAGEFS_FAULTS
head -c 100000 /dev/urandom >"$D/late.bin"
sync
check_eq "queue a job" OK "$(commit "$D/late.bin" '{"addressing":"hash","async":true}')"
sleep 0.5
kill_daemon
out=$("$STAGEFS" jobs "$SOURCE" -o "index=$INDEX,$BACKEND_OPTS" 2>&1)
check "the unmounted store's queue holds it ($out)" grep -qE "^running +[0-9]+ +staging/lab/Jobs/late.bin" <<<"$out"
mount_fs || exit 1
check "the next mount runs it" await_jobs
check "committed" test -f "$D/.receipts/late.bin.json"
grep -q "commit job(s) of the previous run resume" "$T/daemon.log"
check_eq "the daemon says it resumed it" 0 $?
unmount_fs

# --retry on an unmounted store
mount_fs || exit 1
printf 'q' >"$D/q.txt"
exec 7>>"$D/q.txt"
check_eq "a commit of an open file: EBUSY" EBUSY "$(commit "$D/q.txt" hash)"
exec 7>&-
unmount_fs
out=$("$STAGEFS" jobs "$SOURCE" -o "index=$INDEX,$BACKEND_OPTS" --retry 2>&1)
check "jobs --retry on the unmounted store queues it ($out)" grep -q "^1 failed job(s) queued again" <<<"$out"
mount_fs || exit 1
check "the next mount runs it" await_jobs
check "committed" test -f "$D/.receipts/q.txt.json"
check_eq "usage: jobs without a store" 2 "$("$STAGEFS" jobs >/dev/null 2>&1; echo $?)"
unmount_fs

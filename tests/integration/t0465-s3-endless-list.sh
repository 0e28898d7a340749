#!/bin/bash
# A server whose listing never ends (every page says IsTruncated, with the
# same continuation token or a new one each time, and no entry) makes a
# listing fail with a clear error instead of looping: fsck, which walks the
# store, exits 1 in seconds and names the reason; the store works again
# once the server does.
. "$(dirname "$0")/lib.sh"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
proxy_start || exit 1
mount_fs || exit 1
mkdir -p "$S/lab/Ls"
printf 'listed\n' >"$S/lab/Ls/a.txt"
check_eq "commit a file" OK "$(commit "$S/lab/Ls/a.txt" hash)"
unmount_fs
fsck_s3() { timeout 60 "$STAGEFS" fsck "$SOURCE" -o "index=$INDEX,$BACKEND_OPTS" 2>&1; }

prules '[{"match": "^GET [^ ]*list-type=2", "times": -1, "action": "endless-list", "token": "same"}]'
out=$(fsck_s3)
rc=$?
check "the same token again: fsck stops (exit $rc, not a timeout)" test "$rc" -ne 124 -a "$rc" -ne 0
check "it says why ($(tail -n 3 <<<"$out"))" grep -q "repeats its continuation token" <<<"$out"

prules '[{"match": "^GET [^ ]*list-type=2", "times": -1, "action": "endless-list", "token": "new"}]'
t0=$SECONDS
out=$(fsck_s3)
rc=$?
check "a new token every time: fsck stops too (exit $rc, $((SECONDS - t0)) s)" test "$rc" -ne 124 -a "$rc" -ne 0
check "it says why ($(tail -n 3 <<<"$out"))" grep -q "truncated pages in a row without an entry" <<<"$out"

prules '[]'
out=$(fsck_s3)
check_eq "the server answers again: fsck is clean ($(tail -n 1 <<<"$out"))" 0 $?

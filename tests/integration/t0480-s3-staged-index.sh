#!/bin/bash
# On s3 the index records every stored staged file (size, mode, mtime and user
# xattrs of the local file when its bytes were read for the upload; a lost
# cache gets them back), moves the rows on
# rename, forgets them on unlink and commit, and a mount uploads exactly the
# local files that differ from their rows.  The case that comparing with the
# server's LastModified got wrong: a file rewritten (same size) within two
# seconds of its upload, whose new upload failed, then a crash.
. "$(dirname "$0")/lib.sh"
# close() uploading (and reporting what the upload met) is upload=sync's
# contract; write-back (the default) is t0485's
BACKEND_OPTS="$BACKEND_OPTS,upload=sync"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
export SFS_S3_MAX_ATTEMPTS=2 SFS_S3_BACKOFF_MS=50

# row REL: "size mode mtime_ns" of the index row of staging/REL, or "none"
row() {
	$PY - "$INDEX" "$1" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
r = db.execute("SELECT size, mode, mtime_ns FROM staged WHERE rel=?", (sys.argv[2],)).fetchone()
print(" ".join(str(v) for v in r) if r else "none")
PYEOF
}
# local REL: "size mode mtime_ns" of the local file, as the daemon sees it
local_st() {
	$PY -c 'import os,sys; s=os.stat(sys.argv[1]); print(s.st_size, s.st_mode, s.st_mtime_ns)' "$1"
}
uploads() { grep -c "not uploaded before" "$T/daemon.log"; }

proxy_start || exit 1 # to refuse chosen uploads at once (see below)
mount_fs || exit 1
D=$S/lab/ix
check "mkdir" mkdir -p "$D/d"
head -c 70000 /dev/urandom >"$T/a1.ref"
check "write a.bin" cp "$T/a1.ref" "$D/a.bin"
check_eq "its row is the file as stored" "$(local_st "$D/a.bin")" "$(row lab/ix/a.bin)"
echo x >"$D/d/x"
echo y >"$D/d/y"
check "rename a directory" mv "$D/d" "$D/e"
check_eq "its rows moved (x)" "$(local_st "$D/e/x")" "$(row lab/ix/e/x)"
check_eq "its rows moved (y)" "$(local_st "$D/e/y")" "$(row lab/ix/e/y)"
check_eq "no rows under the old name" none "$(row lab/ix/d/x)"
check "rename a file" mv "$D/e/y" "$D/y"
check_eq "row moved" "$(local_st "$D/y")" "$(row lab/ix/y)"
check "unlink" rm "$D/y"
check_eq "row forgotten" none "$(row lab/ix/y)"
check_eq "commit e/x" OK "$(commit "$D/e/x" hash)"
check_eq "row forgotten at commit" none "$(row lab/ix/e/x)"

# a clean remount uploads nothing: every row matches
remount || exit 1
check_eq "a clean remount uploads nothing" 0 "$(uploads)"

# store c.bin, then at once (well within 2 s) rewrite it in place, same size,
# while the server refuses its uploads (500, every time)
head -c 70000 /dev/urandom >"$T/c1.ref"
head -c 70000 /dev/urandom >"$T/a2.ref"
cp "$T/c1.ref" "$D/c.bin"
prules '[{"match": "^PUT .*/c\\.bin", "times": -1, "status": 500}]'
out=$(sysc write_file "$D/c.bin" "$T/a2.ref")
check_eq "the rewrite's upload fails" EIO "$out"
check "the bucket still has the first bytes" cmp "$T/c1.ref" "$(sobj _staging/lab/ix/c.bin)"
kill_daemon
prules '[]'
mount_fs || exit 1
check "after the crash the mount stored the rewrite" cmp "$T/a2.ref" "$(sobj _staging/lab/ix/c.bin)"
check_eq "one upload at that mount" 1 "$(uploads)"
check_eq "the row is the rewritten file" "$(local_st "$D/c.bin")" "$(row lab/ix/c.bin)"

# a file with its own mode and user xattr, as a script would write it
$PY - "$D/m.bin" <<'PYEOF'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o600)
os.setxattr(fd, "user.lab.operator", b"ada\x00lovelace")
os.write(fd, b"m" * 5000)
os.close(fd)
PYEOF
# and after the close, metadata only (no new upload): the row follows
check "chmod after the close" chmod 0640 "$D/m.bin"
check "setxattr after the close" $PY -c 'import os,sys; os.setxattr(sys.argv[1], "user.lab.rig", b"2")' "$D/m.bin"
m_before=$(local_st "$D/m.bin")

# a lost cache: files come back from the bucket, with the mode, user xattrs
# and mtime the index recorded, and their rows match at once
unmount_fs
rm -rf "$T/cache"
mount_fs || exit 1
check "a.bin came back from the bucket" cmp "$T/a1.ref" "$D/a.bin"
check "c.bin came back from the bucket" cmp "$T/a2.ref" "$D/c.bin"
check_eq "its row is the downloaded file" "$(local_st "$D/a.bin")" "$(row lab/ix/a.bin)"
check_eq "m.bin: size, mode and mtime as before the loss" "$m_before" "$(local_st "$D/m.bin")"
check_eq "m.bin: its user xattrs are back" "b'ada\\x00lovelace' b'2'" \
	"$($PY -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.lab.operator"), os.getxattr(sys.argv[1], "user.lab.rig"))' "$D/m.bin")"
remount || exit 1
check_eq "and the next mount uploads nothing" 1 "$(uploads)"

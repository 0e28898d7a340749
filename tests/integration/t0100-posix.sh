#!/bin/bash
# POSIX behaviour of staging/<schema>/<table>/... (SPEC §3: full POSIX for files and directories).
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1
D=$S/lab/sess
check "mkdir -p staging/lab/sess" mkdir -p "$D"

# create, O_EXCL
expect_errno create_excl "$D/a" OK
expect_errno create_excl "$D/a" EEXIST
expect_errno create "$D/a" OK

# pwrite out of order, then read back
$PY - "$D/ooo" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
os.pwrite(fd, b"C" * 4096, 8192)
os.pwrite(fd, b"A" * 4096, 0)
os.pwrite(fd, b"B" * 4096, 4096)
os.close(fd)
EOF
check_eq "out-of-order pwrite reads back" \
	"$(printf 'A%.0s' $(seq 4096); printf 'B%.0s' $(seq 4096); printf 'C%.0s' $(seq 4096))" \
	"$(cat "$D/ooo")"

# sparse file: write 4 bytes at 10 MiB of a new file; the hole reads as zeros
$PY - "$D/sparse" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.pwrite(fd, b"tail", 10 << 20)
os.close(fd)
EOF
check_eq "sparse file size" $(((10 << 20) + 4)) "$(stat -c %s "$D/sparse")"
check_eq "sparse hole reads as zeros" "10485760" \
	"$(head -c $((10 << 20)) "$D/sparse" | tr -d '\0' | wc -c | awk '{print 10485760 - $1}')"
check_eq "sparse tail" "tail" "$(tail -c 4 "$D/sparse")"

# in-place rewrite (r+ without truncation)
printf 'hello world' >"$D/inplace"
$PY - "$D/inplace" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(6)
    f.write(b"WORLD")
EOF
check_eq "in-place rewrite" "hello WORLD" "$(cat "$D/inplace")"

# truncate (path) and ftruncate on an open handle
printf '0123456789' >"$D/trunc"
expect_errno truncate "$D/trunc" 4 OK
check_eq "truncate shrinks" "0123" "$(cat "$D/trunc")"
$PY - "$D/trunc" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"abcdef")
os.ftruncate(fd, 3)
assert os.fstat(fd).st_size == 3, os.fstat(fd).st_size
os.ftruncate(fd, 8)
os.close(fd)
EOF
check_eq "ftruncate on an open handle" "abc00000" "$(tr '\0' 0 <"$D/trunc")"
check_eq "truncate via shell >" "" "$(: >"$D/trunc"; cat "$D/trunc")"

# rename-replace: atomic replace over an existing key (zarr writes .partial then renames)
printf 'old' >"$D/0.0"
printf 'new' >"$D/0.0.partial"
expect_errno rename "$D/0.0.partial" "$D/0.0" OK
check_eq "rename replaced the content" "new" "$(cat "$D/0.0")"
expect_errno open_r "$D/0.0.partial" ENOENT
$PY - "$D" <<'EOF' && ok "replace while the old file is open keeps the old bytes for the reader" || fail "replace while open"
import os, sys
d = sys.argv[1]
with open(d + "/keep", "wb") as f: f.write(b"one")
r = open(d + "/keep", "rb")
with open(d + "/keep.tmp", "wb") as f: f.write(b"two")
os.replace(d + "/keep.tmp", d + "/keep")
assert r.read() == b"one"
r.close()
assert open(d + "/keep", "rb").read() == b"two"
EOF
expect_errno rename_noreplace "$D/keep" "$D/0.0" EEXIST

# rename of directories (with content), also over an empty directory
mkdir -p "$D/dir1/sub" && printf x >"$D/dir1/sub/f"
expect_errno rename "$D/dir1" "$D/dir2" OK
check_eq "renamed directory keeps content" "x" "$(cat "$D/dir2/sub/f" 2>&1)"
mkdir "$D/empty"
expect_errno rename "$D/dir2" "$D/empty" OK
check_eq "rename over an empty dir" "x" "$(cat "$D/empty/sub/f" 2>&1)"
mkdir -p "$D/full/x"
expect_errno rename "$D/empty" "$D/full" ENOTEMPTY
mkdir -p "$S/lab/other"
expect_errno rename "$D/empty" "$S/lab/other/moved" OK
check "rename across tables" test -f "$S/lab/other/moved/sub/f"

# hard links (zarr 3 / h5py tools link then unlink)
printf 'linked' >"$D/l1"
expect_errno link "$D/l1" "$D/l2" OK
check_eq "link count 2" 2 "$(stat -c %h "$D/l1")"
check_eq "same inode" "$(stat -c %i "$D/l1")" "$(stat -c %i "$D/l2")"
expect_errno unlink "$D/l1" OK
check_eq "content through the remaining link" "linked" "$(cat "$D/l2")"
check_eq "link count back to 1" 1 "$(stat -c %h "$D/l2")"
expect_errno link "$D/l2" "$D/inplace" EEXIST

# symlink / readlink
expect_errno symlink "l2" "$D/sl" OK
check_eq "readlink" "l2" "$(readlink "$D/sl")"
check_eq "read through a symlink" "linked" "$(cat "$D/sl")"
check_eq "lstat says symlink" "symbolic link" "$(stat -c %F "$D/sl")"
expect_errno symlink "/nonexistent/target" "$D/dangling" OK
check_eq "dangling symlink target" "/nonexistent/target" "$(readlink "$D/dangling")"

# mkdir / rmdir
expect_errno mkdir "$D/nd" OK
expect_errno mkdir "$D/nd" EEXIST
printf y >"$D/nd/f"
expect_errno rmdir "$D/nd" ENOTEMPTY
rm "$D/nd/f"
expect_errno rmdir "$D/nd" OK
expect_errno rmdir "$D/nd" ENOENT
expect_errno unlink "$D/nope" ENOENT

# chmod / chown / utimens
check "chmod 600" chmod 600 "$D/l2"
check_eq "mode after chmod" 600 "$(stat -c %a "$D/l2")"
check "chown 1234:5678" chown 1234:5678 "$D/l2"
check_eq "owner after chown" "1234:5678" "$(stat -c %u:%g "$D/l2")"
check "touch -d" touch -d '2001-02-03 04:05:06 UTC' "$D/l2"
check_eq "mtime after touch -d" 981173106 "$(stat -c %Y "$D/l2")"
check "touch -a -d" touch -a -d '2002-01-01 00:00:00 UTC' "$D/l2"
check_eq "atime after touch -a" 1009843200 "$(stat -c %X "$D/l2")"
check_eq "mtime unchanged by touch -a" 981173106 "$(stat -c %Y "$D/l2")"
mkdir -p "$D/cm" && check "chmod a directory" chmod 750 "$D/cm"
check_eq "dir mode" 750 "$(stat -c %a "$D/cm")"

# statfs
check "df on the mount" df "$MNT"
check_eq "stat -f type" fuseblk-or-fuse "$(t=$(stat -f -c %T "$MNT"); case $t in fuse*) echo fuseblk-or-fuse ;; *) echo "$t" ;; esac)"
check "stat -f reports blocks" test "$(stat -f -c %b "$S/lab")" -gt 0

# user xattrs; user.stagefs.* bookkeeping is hidden from listxattr
printf 'seq' >"$D/x"
expect_errno setxattr "$D/x" user.color blue OK
check_eq "getxattr" blue "$(xget "$D/x" user.color)"
check_eq "listxattr shows only user xattrs" "user.color" "$(sysc listxattr "$D/x")"
expect_errno setxattr "$D/x" user.stagefs.md5 forged EPERM
expect_errno getxattr "$D/x" user.stagefs.md5 ENODATA
expect_errno removexattr "$D/x" user.color OK
expect_errno getxattr "$D/x" user.color ENODATA
expect_errno removexattr "$D/x" user.color ENODATA
check_eq "listxattr empty after remove" "" "$(sysc listxattr "$D/x")"
# only the user namespace: a root daemon must not write trusted.*/security.*
# for any caller, and ACLs are not enforced here (EOPNOTSUPP = ENOTSUP on Linux;
# ls caches it per filesystem)
expect_errno setxattr "$D/x" trusted.evil x ENOTSUP
expect_errno setxattr "$D/x" security.selinux x ENOTSUP
expect_errno getxattr "$D/x" security.selinux ENOTSUP
expect_errno getxattr "$D/x" system.posix_acl_access ENOTSUP
expect_errno removexattr "$D/x" trusted.evil ENOTSUP
check_eq "nothing reached the store's trusted namespace" "" \
	"$(getfattr -m trusted. -d "$(sobj _staging/lab/sess/x)" 2>/dev/null)"
expect_errno setxattr "$D/cm" user.dirattr v OK
check_eq "xattr on a directory" v "$(xget "$D/cm" user.dirattr)"
uploaded "$D/x"
check_eq "status of a staged file" staged "$(xget "$D/x" user.stagefs.status)"

# fsync, fdatasync
$PY - "$D/fs" <<'EOF' && ok "fsync/fdatasync/fsync dir" || fail "fsync"
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"durable")
os.fsync(fd)
os.fdatasync(fd)
os.close(fd)
dfd = os.open(os.path.dirname(sys.argv[1]), os.O_RDONLY | os.O_DIRECTORY)
os.fsync(dfd)
os.close(dfd)
EOF

# flock and fcntl locks: exclusive between processes
$PY - "$D/fs" <<'EOF' && ok "flock excludes another open file description" || fail "flock"
import fcntl, os, sys
a = open(sys.argv[1], "rb")
b = open(sys.argv[1], "rb")
fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
try:
    fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
    sys.exit("second flock succeeded")
except BlockingIOError:
    pass
fcntl.flock(a, fcntl.LOCK_UN)
fcntl.flock(b, fcntl.LOCK_SH | fcntl.LOCK_NB)
EOF
$PY - "$D/fs" <<'EOF' && ok "fcntl lockf excludes another process" || fail "lockf"
import fcntl, os, sys
f = open(sys.argv[1], "r+b")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 4, 0)
pid = os.fork()
if pid == 0:
    g = open(sys.argv[1], "r+b")
    try:
        fcntl.lockf(g, fcntl.LOCK_EX | fcntl.LOCK_NB, 4, 0)
        os._exit(1)          # must not get the same range
    except OSError:
        pass
    fcntl.lockf(g, fcntl.LOCK_EX | fcntl.LOCK_NB, 4, 4)   # another range is free
    os._exit(0)
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
EOF

# ioctl: unsupported -> ENOTTY
expect_errno ioctl_tcgets "$D/fs" ENOTTY

# large file: 64 MiB via dd bs=1M, md5 compared with the source
head -c $((64 << 20)) /dev/urandom >"$T/big.src"
check "dd 64 MiB in" dd if="$T/big.src" of="$D/big" bs=1M status=none
check_eq "64 MiB size" $((64 << 20)) "$(stat -c %s "$D/big")"
check_eq "64 MiB md5 through the mount" "$(md5 "$T/big.src")" "$(md5 "$D/big")"
uploaded "$D/big"
check_eq "64 MiB md5 in the store" "$(md5 "$T/big.src")" "$(md5 "$(sobj _staging/lab/sess/big)")"
rm -f "$T/big.src"

# append mode goes to the end
printf 'ab' >"$D/app"
printf 'cd' >>"$D/app"
check_eq "O_APPEND" "abcd" "$(cat "$D/app")"

# the data lands in the store under _staging/
uploaded "$D/inplace"
check_eq "store holds the staged bytes" "hello WORLD" "$(cat "$(sobj _staging/lab/sess/inplace)")"

# readdir lists what was created
check_eq "readdir" "0.0 app big" "$(ls "$D" | grep -E '^(0\.0|app|big)$' | tr '\n' ' ' | sed 's/ $//')"
# "." and ".." are listed with their inode numbers (readdir(3) hides entries numbered 0)
check_eq "ls -a lists . and .. in staging" ". .." "$(ls -fa "$D" | grep -xE '\.|\.\.' | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "and at the root" ". .." "$(ls -fa "$MNT" | grep -xE '\.|\.\.' | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "the . entry is the directory" "$(stat -c %i "$D")" "$(ls -fia "$D" | awk '$2 == "." { print $1 }')"

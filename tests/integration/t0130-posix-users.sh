#!/bin/bash
# Staging with other users (-o allow_other,default_permissions), as ext4 does
# it: modes exactly as asked (the daemon's umask takes nothing), owners and
# set-group-ID directories, set-ID bits dropped by another user's write,
# sticky directories, renames, FIFOs and device nodes (which a commit refuses).
# The pjdfstest failures these came from: open/02, open/03, rename/21, chmod/12.
. "$(dirname "$0")/lib.sh"

command -v setpriv >/dev/null || { skip "setpriv (util-linux) missing"; exit 77; }
mount_fs -o allow_other,default_permissions || exit 1
# other users must be able to reach the mount: the test's own dirs are 0700
p=$MNT
while [ "$p" != / ]; do
	p=$(dirname "$p")
	chmod o+x "$p" 2>/dev/null
done
D=$S/lab/users
mkdir -p "$D" && chmod 0777 "$D"

# usysc UID OP ARGS...: one syscall as user UID (group UID, no other groups); the
# helper is copied where other users can read it (the checkout may be private)
cp "$TESTS_DIR/sysc.py" "$T/sysc.py" && chmod 0644 "$T/sysc.py"
usysc() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$u" --clear-groups $PY "$T/sysc.py" "$@" 2>&1
}
mode_of() { stat -c %a "$1"; }

# modes: exactly as asked (the caller's umask applies, the daemon's does not)
out=$($PY - "$D" <<'PYEOF'
import os, sys
d = sys.argv[1]
os.umask(0)
os.close(os.open(d + "/m0620", os.O_CREAT | os.O_WRONLY, 0o620))
os.mkdir(d + "/d0777", 0o777)
os.mknod(d + "/f0666", 0o010666)
os.umask(0o027)
os.close(os.open(d + "/m0777-027", os.O_CREAT | os.O_WRONLY, 0o777))
print("ok")
PYEOF
)
check_eq "files made with umask 0 and 027" ok "$out"
check_eq "open(O_CREAT, 0620) under umask 0 gives 0620" 620 "$(mode_of "$D/m0620")"
check_eq "mkdir 0777 under umask 0 gives 0777" 777 "$(mode_of "$D/d0777")"
check_eq "mkfifo 0666 under umask 0 gives 0666" 666 "$(mode_of "$D/f0666")"
check_eq "the caller's umask 027 still applies" 750 "$(mode_of "$D/m0777-027")"

# owners: what a user makes is the user's; a set-group-ID directory's group is inherited
expect_u() { # desc want uid op args...
	local desc=$1 want=$2 u=$3
	shift 3
	check_eq "$desc" "$want" "$(usysc "$u" "$@" | tail -n 1)"
}
expect_u "nobody creates a file in a 0777 dir" OK 65534 create "$D/by-nobody"
check_eq "it belongs to nobody" "65534:65534" "$(stat -c %u:%g "$D/by-nobody")"
mkdir "$D/sgid" && chgrp 100 "$D/sgid" && chmod 2777 "$D/sgid"
expect_u "nobody creates in a set-group-ID dir" OK 65534 create "$D/sgid/f"
check_eq "the file takes the directory's group" "65534:100" "$(stat -c %u:%g "$D/sgid/f")"
expect_u "nobody makes a subdirectory there" OK 65534 mkdir "$D/sgid/sub"
check_eq "it takes the group and the set-group-ID bit" "65534:100 2755" \
	"$(stat -c '%u:%g %a' "$D/sgid/sub")"
mkdir "$D/closed" && chmod 0755 "$D/closed"
expect_u "nobody cannot create in a 0755 dir of root's" EACCES 65534 create "$D/closed/x"
expect_u "nobody cannot chown its file to root" EPERM 65534 chown "$D/by-nobody" 0 0

# set-ID bits: another user's write drops them, and stat shows it at once (chmod/12)
for m in 4777 2777 6777; do
	rm -f "$D/sid"
	$PY -c "import os; os.umask(0); os.close(os.open('$D/sid', os.O_CREAT|os.O_WRONLY, 0o$m))"
	check_eq "mode $m as made" "$m" "$(mode_of "$D/sid")"
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups $PY - "$D/sid" <<'PYEOF' 2>&1
import os, stat, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"x")
print(oct(stat.S_IMODE(os.fstat(fd).st_mode)))
os.close(fd)
PYEOF
)
	check_eq "a write by nobody drops set-ID of $m (fstat)" 0o777 "$out"
	check_eq "and stat agrees" 777 "$(mode_of "$D/sid")"
done
$PY -c "import os; os.umask(0); os.close(os.open('$D/sid-root', os.O_CREAT|os.O_WRONLY, 0o4755))"
echo x >>"$D/sid-root"
check_eq "root's own write keeps set-user-ID" 4755 "$(mode_of "$D/sid-root")"

# renames by another user where the directory allows it (rename/21)
mkdir "$D/n2" && chmod 0777 "$D/n2"
mkdir "$D/n2/n0" && chmod 0700 "$D/n2/n0"
expect_u "nobody renames root's 0700 dir within a 0777 dir" OK 65534 rename "$D/n2/n0" "$D/n2/n1"
expect_u "and back" OK 65534 rename "$D/n2/n1" "$D/n2/n0"
mkdir "$D/n3" && chmod 0777 "$D/n3"
expect_u "but cannot move it to another dir (its '..' needs write)" EACCES 65534 rename "$D/n2/n0" "$D/n3/n1"

# sticky directories: only the owner (of the file or the dir) removes or replaces
mkdir "$D/sticky" && chmod 1777 "$D/sticky"
expect_u "nobody creates in a sticky dir" OK 65534 create "$D/sticky/mine"
expect_u "another user cannot remove it" EPERM 65533 unlink "$D/sticky/mine"
expect_u "another user makes its own file" OK 65533 create "$D/sticky/theirs"
expect_u "nor rename over it" EPERM 65533 rename "$D/sticky/theirs" "$D/sticky/mine"
chown 65533 "$D/sticky"
expect_u "once the dir is that user's, it may" OK 65533 rename "$D/sticky/theirs" "$D/sticky/mine"
chown 0 "$D/sticky"
expect_u "back to root's: nobody may not remove what is now 65533's" EPERM 65534 unlink "$D/sticky/mine"

# special files exist in staging for whom the kernel allows, commits refuse them
expect_errno mknod "$D/fifo" fifo OK
check "a FIFO in staging" test -p "$D/fifo"
expect_errno mknod "$D/null" chr OK
check_eq "a device node in staging (root)" "c 1:3" "$(stat -c '%F' "$D/null" | cut -c1) $(stat -c '%t:%T' "$D/null")"
expect_u "nobody may not make a device node" EPERM 65534 mknod "$D/null2" chr
mkdir "$D/tree" && printf data >"$D/tree/a" && mkfifo "$D/tree/p"
check_eq "a tree holding a FIFO does not commit" EINVAL "$(commit "$D/tree" '{"field":"raw","key":{"id":1}}')"
check_eq "and stays staged" data "$(cat "$D/tree/a")"
# the kernel allows user.* xattrs only on files and directories: it answers for us
check_eq "a device node itself does not commit (the kernel's EPERM)" EPERM "$(commit "$D/null" hash)"
check "the device node cannot be opened through the mount (nodev)" sh -c "! head -c1 '$D/null' 2>/dev/null"

# commits by other users (the daemon checks them itself, as root it could do anything):
# a commit takes the entry out of its directory, so it needs what a rename out of it
# needs - write permission on the entry, write and search on the directory, and in a
# sticky directory ownership of the entry or the directory
C=$S/lab/commits
mkdir -p "$C" && chmod 0777 "$C"
printf a >"$C/roots" && chmod 0666 "$C/roots"
chmod 0644 "$C/roots"
expect_u "a user without write permission on an entry cannot commit it" EACCES 65534 \
	setxattr "$C/roots" user.stagefs.commit hash
check "it stays staged" test -f "$C/roots"
printf b >"$C/mine" && chown 65534:65534 "$C/mine"
expect_u "its owner commits a file" OK 65534 setxattr "$C/mine" user.stagefs.commit hash
check "which leaves staging" test ! -e "$C/mine"
check "for its receipt" test -f "$C/.receipts/mine.json"
mkdir "$C/ro" && chmod 0755 "$C/ro" && printf c >"$C/ro/mine" && chown 65534:65534 "$C/ro/mine"
expect_u "not out of a directory the user may not write" EACCES 65534 \
	setxattr "$C/ro/mine" user.stagefs.commit hash
check "it stays staged" test -f "$C/ro/mine"
mkdir "$C/tree" && printf d >"$C/tree/f" && chown -R 65534:65534 "$C/tree" && chmod 0755 "$C/tree"
expect_u "nor another user's directory tree" EACCES 65533 \
	setxattr "$C/tree" user.stagefs.commit '{"field":"raw","key":{"id":2}}'
mkdir "$C/sticky" && chmod 1777 "$C/sticky"
printf e >"$C/sticky/theirs" && chown 65533:65533 "$C/sticky/theirs" && chmod 0666 "$C/sticky/theirs"
expect_u "nor another user's file out of a sticky directory, writable as it is" EPERM 65534 \
	setxattr "$C/sticky/theirs" user.stagefs.commit hash
check "it stays staged" test -f "$C/sticky/theirs"
expect_u "which its owner may" OK 65533 setxattr "$C/sticky/theirs" user.stagefs.commit '{"field":"raw","key":{"id":3}}'
expect_u "root's tree, by its owner (root commits anything)" OK 65534 \
	setxattr "$C/tree" user.stagefs.commit '{"field":"raw","key":{"id":2}}'

# what is canonical, receipts and snapshots: no user writes them (root neither: t0230)
canon=$MNT/$(json_get path <"$C/sticky/.receipts/theirs.json")
check "the committed object is readable by other users" test "$(usysc 65534 open_r "$canon" | tail -n1)" = OK
expect_u "but not writable" EACCES 65534 open_w "$canon"
expect_u "nor removable" EACCES 65534 unlink "$canon"
expect_u "a receipt cannot be written" EACCES 65534 open_w "$C/.receipts/mine.json"
expect_u "nor made" EACCES 65534 create "$C/.receipts/forged.json"
"$STAGEFS" publish "$MNT" users >/dev/null 2>&1 || fail "publish"
snap=$MNT/.snapshots/users/$(json_get path <"$C/sticky/.receipts/theirs.json")
check_eq "the snapshot holds the object" e "$(cat "$snap" 2>&1)"
expect_u "and cannot be written" EACCES 65534 open_w "$snap"
expect_u "nor added to" EACCES 65534 create "$(dirname "$snap")/new"

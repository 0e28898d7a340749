#!/bin/bash
# _schema/ and _hash/ are read-only (EROFS for every mutation); receipts are
# read-only files that may be unlinked (SPEC §3).
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1
D=$S/lab/Sess
mkdir -p "$D"
printf hello >"$D/h"
check_eq "commit hash object" OK "$(commit "$D/h" hash)"
printf schema >"$D/s.bin"
check_eq "commit schema object" OK "$(commit "$D/s.bin" '{"field":"raw","key":{"id":1},"token":"roTOKEN1"}')"
mkdir -p "$D/d.zarr/sub" && printf 1 >"$D/d.zarr/sub/0"
check_eq "commit schema dir" OK "$(commit "$D/d.zarr" '{"field":"raw","key":{"id":2},"token":"roTOKEN2"}')"
H=$MNT/_hash/lab/lvauakv4jmvhnolrtwiraf6fsi
F=$MNT/_schema/lab/Sess/id=1/raw_roTOKEN1.bin
Z=$MNT/_schema/lab/Sess/id=2/raw_roTOKEN2.zarr
snap() { for k in $(skeys _hash; skeys _schema); do printf '%s %s\n' "$k" "$(md5 "$(sobj "$k")")"; done | md5sum; }
before=$(snap)

for f in "$H" "$F" "$Z/sub/0"; do
	n=${f#$MNT/}
	expect_errno open_w "$f" EROFS
	expect_errno open_rw "$f" EROFS
	expect_errno open_trunc "$f" EROFS
	expect_errno open_append "$f" EROFS
	expect_errno truncate "$f" 0 EROFS
	expect_errno unlink "$f" EROFS
	expect_errno chmod "$f" 666 EROFS
	expect_errno chown "$f" 1 1 EROFS
	expect_errno utime "$f" EROFS
	expect_errno setxattr "$f" user.x y EROFS
	expect_errno removexattr "$f" user.stagefs.metadata EROFS
	expect_errno setxattr "$f" user.stagefs.commit hash EROFS
	expect_errno rename "$f" "$f.new" EROFS
	expect_errno link "$f" "$(dirname "$f")/hardlink" EROFS
	expect_errno read "$f" OK
done
for d in "$MNT/_hash" "$MNT/_hash/lab" "$MNT/_schema" "$MNT/_schema/lab/Sess" "$Z" "$Z/sub"; do
	expect_errno create "$d/new" EROFS
	expect_errno create_excl "$d/new" EROFS
	expect_errno mkdir "$d/newdir" EROFS
	expect_errno symlink x "$d/sl" EROFS
	expect_errno mknod "$d/fifo" fifo EROFS
	expect_errno chmod "$d" 777 EROFS
done
expect_errno rmdir "$Z/sub" EROFS
expect_errno rmdir "$MNT/_schema/lab/Sess/id=2" EROFS
expect_errno rename "$Z" "$MNT/_schema/lab/Sess/id=2/moved" EROFS
# no way in from staging either
printf x >"$D/x"
got=$(sysc rename "$D/x" "$MNT/_hash/lab/x")
case $got in EROFS | EXDEV) ok "rename staging -> _hash refused ($got)" ;; *) fail "rename staging -> _hash" "$got" ;; esac
got=$(sysc link "$D/x" "$MNT/_hash/lab/x")
case $got in EROFS | EXDEV) ok "link staging -> _hash refused ($got)" ;; *) fail "link staging -> _hash" "$got" ;; esac
check "dd into a canonical file fails" bash -c "! dd if=/dev/zero of='$F' bs=1 count=1 conv=notrunc status=none 2>/dev/null"
check_eq "canonical bytes unchanged" schema "$(cat "$F")"
check_eq "store unchanged by every refused mutation" "$before" "$(snap)"
check_eq "access(W_OK) on canonical" 1 "$(test -w "$F"; echo $?)"

# receipts: read-only files, unlink allowed; the directory is reserved
R=$D/.receipts/h.json
expect_errno read "$R" OK
expect_errno open_w "$R" EPERM
expect_errno open_trunc "$R" EPERM
expect_errno truncate "$R" 0 EPERM
expect_errno chmod "$R" 666 EPERM
expect_errno setxattr "$R" user.x y EPERM
expect_errno rename "$R" "$D/.receipts/moved.json" EPERM
expect_errno rename "$R" "$D/stolen.json" EPERM
expect_errno create "$D/.receipts/new.json" EPERM
expect_errno mkdir "$D/.receipts/sub" EPERM
expect_errno rmdir "$D/.receipts" EPERM
expect_errno rename "$D/.receipts" "$D/receipts2" EPERM
expect_errno unlink "$R" OK
expect_errno read "$R" ENOENT
check "other receipts remain" test -f "$D/.receipts/s.bin.json"
expect_errno unlink "$D/.receipts/s.bin.json" OK
expect_errno unlink "$D/.receipts/d.zarr.json" OK
expect_errno opendir "$D/.receipts" ENOENT
check "objects stay after receipts are gone" cmp <(printf hello) "$H"

# access(W_OK) says what open for writing says: EPERM on a receipt, EROFS on canonical
printf r >"$D/r" && check_eq "commit for a receipt" OK "$(commit "$D/r" hash)"
out=$($PY - "$D/.receipts/r.json" "$F" <<'PYEOF'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
res = []
for p in sys.argv[1:]:
    r = libc.faccessat(-100, p.encode(), os.W_OK, 0)
    res.append("OK" if r == 0 else errno.errorcode[ctypes.get_errno()])
print(" ".join(res))
PYEOF
)
check_eq "access(W_OK): receipt EPERM, canonical EROFS" "EPERM EROFS" "$out"

# a committed entry's inode, still open: every change fails ENOENT, nothing
# reaches the canonical object behind it (its xattrs, here)
printf keep >"$D/x1" && setfattr -n user.tag -v kept "$D/x1"
out=$($PY - "$D/x1" "$TESTS_DIR/sysc.py" <<'PYEOF'
import errno, os, subprocess, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
subprocess.run([sys.executable, sys.argv[2], "setxattr", sys.argv[1], "user.stagefs.commit",
                "hash"], check=True, stdout=subprocess.DEVNULL)
res = []
for f in (lambda: os.removexattr(fd, "user.tag"), lambda: os.setxattr(fd, "user.t2", b"1"),
          lambda: os.fchmod(fd, 0o600)):
    try:
        f()
        res.append("OK")
    except OSError as e:
        res.append(errno.errorcode[e.errno])
print(" ".join(res))
PYEOF
)
check_eq "removexattr, setxattr, fchmod on a committed entry's open fd" "ENOENT ENOENT ENOENT" "$out"
check_eq "x1 left staging" ENOENT "$(sysc read "$D/x1")"
if [ "$BACKEND" = file ]; then
	obj=$(json_get path <"$D/.receipts/x1.json")
	check_eq "the canonical object keeps its xattr" kept "$(getfattr --only-values -n user.tag "$STORE/$obj" 2>/dev/null)"
fi

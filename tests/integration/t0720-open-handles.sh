#!/bin/bash
# Open handles beyond the daemon's descriptors (issue 12's limits): with the
# daemon held to 512 descriptors, one process opens 3000 staged files at once.
# What does not fit fails with EMFILE - no crash, no hang - while the handles
# that opened keep working; a commit meanwhile either succeeds or fails cleanly;
# once they are closed every file holds its bytes, a new commit works, the
# unmount is clean and fsck finds the index and the store consistent.
. "$(dirname "$0")/lib.sh"

FDS=512 N=3000
printf '#!/bin/sh\nulimit -Sn %s && ulimit -Hn %s || exit 1\nexec %s "$@"\n' \
	$FDS $FDS "$(realpath "$STAGEFS")" >"$T/lowfd"
chmod +x "$T/lowfd"
real=$STAGEFS STAGEFS=$T/lowfd
mount_fs || exit 1
STAGEFS=$real
check_eq "the daemon has $FDS descriptors" $FDS "$(awk '/open files/ { print $4 }' "/proc/$DAEMON_PID/limits")"
D=$S/lab/Handles
mkdir -p "$D"
printf 'before\n' >"$D/held.bin"
out=$($PY - "$D" "$N" <<'PYEOF' 2>&1
import errno, os, resource, subprocess, sys
d, n = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if hard < n + 64:
    sys.exit(f"this process may hold only {hard} descriptors")
fds, errs = [], {}
for i in range(n):
    try:
        fds.append(os.open(f"{d}/f{i}", os.O_CREAT | os.O_RDWR, 0o644))
    except OSError as e:
        errs[errno.errorcode[e.errno]] = errs.get(errno.errorcode[e.errno], 0) + 1
ok = sum(os.pwrite(fd, b"%d\n" % i, 0) > 0 for i, fd in enumerate(fds))
try:
    os.setxattr(f"{d}/held.bin", "user.stagefs.commit", b"hash")
    during = "OK"
except OSError as e:
    during = errno.errorcode[e.errno]
for fd in fds:
    os.close(fd)
print(len(fds), ok, " ".join(f"{k}={v}" for k, v in sorted(errs.items())), during)
PYEOF
)
read -r opened written errs during <<<"$out"
check "some handles opened ($opened)" test "${opened:-0}" -gt 100
check_eq "every opened handle wrote" "$opened" "$written"
check_eq "the others failed with EMFILE" "EMFILE=$((N - opened))" "$errs"
case $during in
OK) ok "a commit while the handles were held: OK" ;;
EMFILE | ENFILE | EIO | EBUSY) ok "a commit while the handles were held failed cleanly ($during)"
	check_eq "  and the entry is still staged" before "$(cat "$D/held.bin")" ;;
*) fail "a commit while the handles were held" "$out" ;;
esac
check "the daemon is alive" kill -0 "$DAEMON_PID"
bad=$(for ((i = 0; i < opened; i++)); do [ "$(cat "$D/f$i")" = "$i" ] || echo "f$i"; done | head -n 3)
check_eq "every file that opened holds its bytes" "" "$bad"
check_eq "ls lists exactly those" "$((opened + $([ "$during" = OK ] && echo 0 || echo 1)))" "$(ls "$D" | wc -l)"
printf 'after\n' >"$D/after.bin"
check_eq "a commit afterwards works" OK "$(commit "$D/after.bin" hash)"
unmount_fs
check "fsck finds the store consistent" "$STAGEFS" fsck "$SOURCE" -o "index=$INDEX${BACKEND_OPTS:+,$BACKEND_OPTS}"

#!/bin/bash
# fstab and systemd (issue 13): an fstab mount (`mount -t fuse`, through Debian's
# mount.fuse3, as scripts/systemd/mnt-lab.mount does) mounts, works and unmounts
# with umount; scripts/systemd/stagefs@.service passes systemd-analyze
# verify, and its ExecStart, run as systemd would, survives SIGHUP (the log is
# reopened, the mount keeps working) and on SIGTERM uploads what is queued,
# unmounts and exits 0.
. "$(dirname "$0")/lib.sh"

# the fstab forms, through Debian's mount.fuse3: `fuse.stagefs` runs `stagefs` from the
# shell's default PATH (/usr/local/bin, /usr/bin: make install), `fuse` with PROGRAM#SOURCE
# runs the program named; the test uses the latter with the binary under test
if [ ! -x /sbin/mount.fuse3 ] && ! command -v mount.fuse3 >/dev/null; then
	fail "mount.fuse3 (Debian's fuse3) missing"
elif mount -t fuse "$(realpath "$STAGEFS")#$SOURCE" "$MNT" \
	-o "_netdev,allow_other,index=$INDEX${BACKEND_OPTS:+,$BACKEND_OPTS}" 2>"$T/mount.err"; then
	ok "mount -t fuse 'STAGEFS#SOURCE' MOUNTPOINT -o _netdev,allow_other,... (an fstab line)"
	pid=$(pgrep -f -- "index=$INDEX" | head -n 1)
	check "the daemon runs in the background" test -n "$pid"
	mkdir -p "$S/lab/Fstab" && printf 'via fstab\n' >"$S/lab/Fstab/a.txt"
	check_eq "and commits" OK "$(commit "$S/lab/Fstab/a.txt" hash)"
	check "umount unmounts" umount "$MNT"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	check "and the daemon exits" sh -c "! kill -0 $pid 2>/dev/null"
else
	fail "mount -t fuse STAGEFS#SOURCE" "$(cat "$T/mount.err")"
fi

# the template unit: verified, then its ExecStart run by hand for instance "lab"
U=$REPO_ROOT/scripts/systemd/stagefs@.service
mkdir -p "$T/units" "$T/etc"
sed -e "s|/usr/local/bin/stagefs|$(realpath "$STAGEFS")|" -e "s|/etc/stagefs/%i.conf|$T/etc/%i.conf|" \
	-e "s|/mnt/%i|$MNT|g" "$U" >"$T/units/stagefs@.service"
if command -v systemd-analyze >/dev/null; then
	cp "$REPO_ROOT/scripts/systemd/mnt-lab.mount" "$T/units/"
	for u in stagefs@.service mnt-lab.mount; do
		out=$(cd "$T/units" && systemd-analyze verify --man=no "./$u" 2>&1)
		check_eq "systemd-analyze verify $u: no complaint" "" "$out"
	done
else
	skip "systemd-analyze missing"
fi
if [ "$BACKEND" = file ]; then
	printf 'location = %s\n' "$STORE" >"$T/etc/lab.conf"
else
	ep=${SOURCE#*endpoint=}
	printf 'backend = s3\nbucket = stagefs-test\nlocation = p\nendpoint = %s\npath_style = true\n' \
		"${ep%%&*}" >"$T/etc/lab.conf"
fi
printf 'index = %s\ncache_dir = %s\n' "$INDEX" "$T/cache" >>"$T/etc/lab.conf"
cmd=$(sed -n 's/^ExecStart=//p' "$T/units/stagefs@.service" | sed 's/%i/lab/g')
$cmd >>"$T/daemon.log" 2>&1 &
DAEMON_PID=$!
_await_mount "$DAEMON_PID" "$MNT" "$T/daemon.log" || exit 1
mkdir -p "$S/lab/Unit" && printf 'queued\n' >"$S/lab/Unit/q.bin"
kill -HUP "$DAEMON_PID"
sleep 0.3
check "SIGHUP leaves the daemon running" kill -0 "$DAEMON_PID"
check_eq "and mounted" queued "$(cat "$S/lab/Unit/q.bin")"
pid=$DAEMON_PID
DAEMON_PID=
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
check_eq "SIGTERM: the daemon exits 0" 0 "$rc"
check "and the mount is gone" sh -c "! awk -v m='$MNT' '\$2 == m { f = 1 } END { exit !f }' /proc/mounts"
check_eq "with the queued file in the store" queued "$(cat "$(sobj _staging/lab/Unit/q.bin)" 2>&1)"

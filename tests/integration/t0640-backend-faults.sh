#!/bin/bash
# The backend fails the Nth change it is asked for (tests/fakes/faulty_backend.c,
# SQLite's I/O-error loop as the model): a schema commit of a zarr tree, a hash
# commit and a publish are tried with N = 1, 2, ... until they succeed.  After
# every failure the commit reports an error, the staged entry is intact, no
# canonical object or snapshot is left half made, fsck is clean, and the next
# try (the same data, the same token) succeeds in the end.  Staged writes on s3
# (uploads) fail too: the writer sees the error or the bytes are uploaded later,
# never lost.
. "$(dirname "$0")/lib.sh"

# the daemon built with the fault-injecting backend, next to the one under test
case $STAGEFS in
*/build/san/stagefs) FAULTY=$REPO_ROOT/build/san/tests/stagefs-faulty ;;
*) FAULTY=$REPO_ROOT/build/tests/stagefs-faulty ;;
esac
if [ ! -x "$FAULTY" ]; then
	fail "no $FAULTY (make test builds it)"
	exit 1
fi
STAGEFS=$FAULTY
CTL=$T/faults
export STAGEFS_FAULTY=$CTL
echo 0 >"$CTL"
arm() { echo "$1" >"$CTL"; }
OPTS="index=$INDEX${BACKEND_OPTS:+,$BACKEND_OPTS}"
# the tools run without faults
fsck_clean() { env -u STAGEFS_FAULTY "$STAGEFS" fsck "$SOURCE" -o "$OPTS" 2>&1; }
tree_md5() { (cd "$1" && find . -type f | sort | xargs md5sum); }

mount_fs || exit 1
D=$S/lab/Faults
mkdir -p "$D"
# stage KIND N: a zarr tree or an HDF5 file whose bytes depend on N (a hash
# commit of bytes already stored would dedup: another path through commit)
stage() {
	$PY - "$D" "$1" "$2" <<'PYEOF'
import sys, numpy as np, h5py, zarr
d, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "zarr":
    z = zarr.open(d + "/frames.zarr", mode="w", shape=(24, 32), chunks=(4, 32), dtype="u2")
    z[:] = np.arange(24 * 32).reshape(24, 32) + n
else:
    with h5py.File(d + "/rec.h5", "w") as f:
        f.create_dataset("v", data=np.arange(3000, dtype="f4") + n)
PYEOF
}
fired() { grep -c . "$CTL.log" 2>/dev/null || echo 0; }

# commit: fail call 1, 2, ... of the commit's changes until no call fails.  A
# failure before the object is complete fails the commit (staged entry intact,
# no object); after it the commit goes forward (retried) and succeeds.
try_commit() { # WHAT KIND VALUE-TEMPLATE (@N@: the try)
	local what=$1 kind=$2 n r before entry got want failed=0 forward=0 bad=0
	for n in $(seq 1 40); do
		stage "$kind" "$n" || { fail "$what: cannot stage try $n"; return 1; }
		if [ "$kind" = zarr ]; then entry=$D/frames.zarr want=$(tree_md5 "$entry")
		else entry=$D/rec.h5 want=$(md5 "$entry"); fi
		before=$(fired)
		arm "$n"
		r=$(commit "$entry" "${3//@N@/$n}")
		arm 0
		[ "$r" = OK ] && COMMITTED="$COMMITTED $n"
		if [ "$(fired)" = "$before" ]; then
			[ "$r" = OK ] || { fail "$what: try $n, nothing failing: commit gave $r"; bad=1; }
			break
		fi
		if [ "$r" = OK ]; then
			forward=$((forward + 1))
					[ ! -e "$entry" ] || { fail "$what: try $n succeeded but the staged entry stayed"; bad=1; }
		else
			failed=$((failed + 1))
			[ "$r" = EIO ] || { fail "$what: call $n failing: commit gave $r, not EIO"; bad=1; }
			if [ -d "$entry" ]; then got=$(tree_md5 "$entry"); else got=$(md5 "$entry" 2>/dev/null); fi
			[ "$got" = "$want" ] || { fail "$what: call $n failing: the staged entry changed"; bad=1; }
			case $(xget "$entry" user.stagefs.status) in
			error:*) ;;
			*) fail "$what: call $n failing: the status does not say error"; bad=1 ;;
			esac
			rm -rf "$entry"
		fi
		unmount_fs
		got=$(fsck_clean)
		[ $? -eq 0 ] || { fail "$what: call $n failing ($r): fsck: $(grep problem <<<"$got" | head -3)"; bad=1; }
		mount_fs || return 1
		[ $bad -eq 0 ] || break
	done
	check "$what: failing each of its changes in turn ($failed failed the commit, $forward went forward)" \
		test $((failed + forward)) -ge 2 -a "$failed" -ge 1
	[ $bad -eq 0 ] && ok "$what: every failure left the staged entry or the whole object, and fsck clean"
	check_eq "$what: the last try, nothing failing, is committed" OK "$r"
}
COMMITTED=
try_commit "a schema commit of a zarr tree" zarr '{"field":"frames","key":{"id":@N@},"token":"fltTOK01"}'
out=$($PY - "$MNT/_schema/lab/Faults" $COMMITTED <<'PYEOF' 2>&1
import sys, zarr, numpy as np
for n in sys.argv[2:]:
    z = zarr.open("%s/id=%s/frames_fltTOK01.zarr" % (sys.argv[1], n), mode="r")
    assert (z[:] == np.arange(768).reshape(24, 32) + int(n)).all(), n
print("ok")
PYEOF
)
check_eq "zarr reads every committed tree back (tries$COMMITTED)" ok "$out"
try_commit "a hash commit" h5 hash

# publish: a failure leaves no snapshot (or the whole one), and the name free
failed=0 bad=0
for n in $(seq 1 40); do
	arm "$n"
	"$STAGEFS" publish "$MNT" flt >/dev/null 2>&1
	r=$?
	arm 0
	[ $r -eq 0 ] && break
	failed=$((failed + 1))
	if env -u STAGEFS_FAULTY "$STAGEFS" snapshots show flt "$MNT" >/dev/null 2>&1; then
		fail "publish, call $n failing: a snapshot 'flt' exists after the failed publish"
		bad=1
		break
	fi
done
check_eq "publish: done in the end" 0 "$r"
check "publish: with changes failing first ($failed tries failed)" test "$failed" -ge 1
[ $bad -eq 0 ] && ok "publish: no failed try left a snapshot"
check "the snapshot verifies" env -u STAGEFS_FAULTY "$STAGEFS" snapshots verify flt "$MNT"

# staged writes on s3: a close or an fsync uploads; a failed upload is the
# fsync's error, and the bytes are stored in the end (file: fsync is the disk's)
if [ "$BACKEND" = s3 ]; then
	printf 'first\n' >"$D/a.txt"
	before=$(fired)
	arm 1
	out=$($PY -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"second\n")
try:
    os.fsync(fd)
    print("fsync ok")
except OSError as e:
    print("fsync failed:", e.strerror)
os.close(fd)' "$D/a.txt" 2>&1)
	arm 0
	check "the upload of an fsync was made to fail" test "$(fired)" -gt "$before"
	check_eq "a failed upload is the fsync's error" "fsync failed: Input/output error" "$out"
	check_eq "the file holds what was written" second "$(cat "$D/a.txt")"
	check "its bytes reach the store in the end (the close uploads again)" \
		bash -c "for i in \$(seq 50); do [ \"\$(cat '$(sobj _staging/lab/Faults/a.txt)' 2>/dev/null)\" = second ] && exit 0; sleep 0.1; done; exit 1"
	# the last upload of a file fails: a commit stores the current bytes before it copies
	printf 'old\n' >"$D/c.txt"
	uploaded "$D/c.txt" # (write-back: in the bucket after upload_delay)
	arm "1 5 1000" # every upload fails, the close's retries too
	printf 'new\n' >"$D/c.txt" 2>/dev/null
	arm 0
	check_eq "the store still has the older bytes" old "$(cat "$(sobj _staging/lab/Faults/c.txt)")"
	check_eq "commit the file" OK "$(commit "$D/c.txt" '{"field":"c","key":{"id":1},"token":"fltTOK02"}')"
	check_eq "the canonical object holds the bytes written last" new \
		"$(cat "$MNT/_schema/lab/Faults/id=1/c_fltTOK02.txt")"
fi
unmount_fs
out=$(fsck_clean)
check_eq "fsck is clean at the end ($(tail -n 1 <<<"$out"))" 0 $?
mount_fs || exit 1
[ "$BACKEND" = s3 ] && check_eq "after a remount the file holds what was written" second "$(cat "$D/a.txt")"
check "the fault log names the calls that failed" test -s "$CTL.log"
unmount_fs

#!/bin/bash
# stagefs gc against a real store (SPEC §6): what a reference list names (an
# object, a file inside a zarr tree, a directory above objects) and what a live
# snapshot lists stays; the rest goes to _trash/ (--dry-run first: it says so
# and changes nothing), leaves the mount and the index, fsck stays clean; gc
# list shows the quarantine, gc restore brings an object back (bytes, metadata,
# receipt); after the grace period a run purges what is still unreferenced and
# restores what is referenced again.  Refused, changing nothing: an empty
# list, a list naming none of the store's objects, an unreadable snapshot.
# Kept: objects committed after the list was written.
. "$(dirname "$0")/lib.sh"

D=$S/lab/Gc
mount_fs || exit 1
mkdir -p "$D"
out=$($PY - "$D" <<'PYEOF' 2>&1
import sys, numpy as np, h5py, zarr
d = sys.argv[1]
with h5py.File(d + "/rec.h5", "w") as f:
    f.create_dataset("v", data=np.arange(5000, dtype="f4"))
for name in ("frames", "scratch"):
    z = zarr.open(d + "/%s.zarr" % name, mode="w", shape=(20, 16), chunks=(4, 16), dtype="u2")
    z[:] = np.arange(20 * 16).reshape(20, 16)
print("ok")
PYEOF
)
check_eq "h5py and zarr write in staging" ok "$out"
printf 'in the paper\n' >"$D/paper.txt"
printf 'nobody wants me\n' >"$D/junk.txt"
printf 'kept by its directory\n' >"$D/sub.txt"
check_eq "commit a hash object for the paper" OK "$(commit "$D/paper.txt" hash)"
"$STAGEFS" publish "$MNT" paper >/dev/null 2>&1
check_eq "publish snapshot 'paper' (it lists the hash object only)" 0 $?
check_eq "commit the HDF5 file" OK "$(commit "$D/rec.h5" '{"field":"raw","key":{"id":1},"token":"gcTOK001"}')"
check_eq "commit a zarr tree" OK "$(commit "$D/frames.zarr" '{"field":"frames","key":{"id":1},"token":"gcTOK002"}')"
check_eq "commit another zarr tree" OK "$(commit "$D/scratch.zarr" '{"field":"scratch","key":{"id":1},"token":"gcTOK003"}')"
check_eq "commit a hash object" OK "$(commit "$D/junk.txt" hash)"
check_eq "commit a file under id=2" OK "$(commit "$D/sub.txt" '{"field":"sub","key":{"id":2},"token":"gcTOK004"}')"
H5=_schema/lab/Gc/id=1/raw_gcTOK001.h5
ZR=_schema/lab/Gc/id=1/frames_gcTOK002.zarr
SC=_schema/lab/Gc/id=1/scratch_gcTOK003.zarr
SUB=_schema/lab/Gc/id=2/sub_gcTOK004.txt
hk() { $PY -c 'import base64,hashlib,sys;print("_hash/lab/"+base64.b32encode(hashlib.md5(sys.argv[1].encode()).digest()).decode().lower().rstrip("="))' "$1"; }
PAPER=$(hk $'in the paper\n')
JUNK=$(hk $'nobody wants me\n')
check "the hash objects are where the test expects them" test -f "$MNT/$JUNK" -a -f "$MNT/$PAPER"
sc_md5=$(cd "$MNT/$SC" && find . -type f | sort | xargs md5sum)
unmount_fs

OPTS="index=$INDEX,$BACKEND_OPTS"
gc() { "$STAGEFS" gc "$SOURCE" -o "$OPTS" "$@" 2>&1; }
fsck() { "$STAGEFS" fsck "$SOURCE" -o "$OPTS" 2>&1; }
state() { (cd "$STORE" && find . | sort) && sqlite3 "$INDEX" 'SELECT path FROM objects ORDER BY 1'; }
# the reference list, as a DataJoint export would give it: written after the commits
REFS=$T/refs.txt
printf '%s\n' "# exported from the lab database" "/$H5" "$ZR/0.0" "_schema/lab/Gc/id=2" \
	"_schema/lab/Gone/id=9/raw_x.h5" >"$REFS"
touch -d '+2 minutes' "$REFS"

# refused, changing nothing
before=$(state)
: >"$T/empty.txt"
out=$(gc --referenced "$T/empty.txt")
check_eq "an empty reference list: exit 1" 1 $?
check "saying why ($out)" grep -q "references nothing" <<<"$out"
printf '%s\n' "lab/Gc/id=1/raw_gcTOK001.h5" "s3://elsewhere/_schema/x" >"$T/wrong.txt"
touch -d '+2 minutes' "$T/wrong.txt"
out=$(gc --referenced "$T/wrong.txt")
check_eq "a list naming none of the store's objects: exit 1" 1 $?
check "saying why ($out)" grep -q "none of the 2 paths" <<<"$out"
cp "$REFS" "$T/old.txt"
touch -d '-10 minutes' "$T/old.txt"
out=$(gc --referenced "$T/old.txt")
check_eq "a list older than every commit: exit 0 ($out)" 0 $?
check "it keeps the unreferenced ones as newer than the list" grep -q "4 referenced, 2 newer than the reference list, 0 quarantined" <<<"$out"
out=$(gc --referenced "$REFS" --dry-run)
check_eq "--dry-run exits 0" 0 $?
check "it would quarantine the unreferenced tree ($out)" grep -q "^would quarantine $SC " <<<"$out"
check "and the unreferenced hash object" grep -q "^would quarantine $JUNK " <<<"$out"
check_eq "and nothing else" 2 "$(grep -c '^would quarantine' <<<"$out")"
check "it warns about the line that names nothing" grep -q "'_schema/lab/Gone/id=9/raw_x.h5' (in the reference list) names no object" <<<"$out"
check_eq "none of that changed the store or the index" "$before" "$(state)"

# the run
out=$(gc --referenced "$REFS")
check_eq "gc exits 0 ($(tail -n 1 <<<"$out"))" 0 $?
check "it counts: 6 objects, 4 referenced, 2 quarantined" grep -q "6 objects: 4 referenced, 0 newer than the reference list, 2 quarantined" <<<"$out"
check "the tree is in the quarantine" test -d "$STORE/_trash/$SC"
check "and not where it was" test ! -e "$STORE/$SC"
check "its record moved with it" test -e "$(sobj "_trash/.stagefs/objects/$SC.json")"
check "the hash object is in the quarantine" test -e "$(sobj "_trash/$JUNK")"
check "the snapshot's object stays" test -e "$(sobj "$PAPER")"
check "the referenced file stays" test -e "$(sobj "$H5")"
check "the tree a file of it referenced stays" test -d "$STORE/$ZR"
check "the object under a referenced directory stays" test -e "$(sobj "$SUB")"
check_eq "the index forgot the two" "" "$(sqlite3 "$INDEX" "SELECT path FROM objects WHERE path IN ('$SC','$JUNK')")"
out=$(fsck)
check_eq "fsck is clean after gc ($(tail -n 2 <<<"$out"))" 0 $?
out=$("$STAGEFS" gc list "$SOURCE" -o "$OPTS" 2>&1)
check "gc list shows both ($out)" bash -c "grep -q '^$SC  quarantined ' <<<'$out' && grep -q '^$JUNK  quarantined ' <<<'$out'"
check "and counts them" grep -q "^2 object(s) in quarantine" <<<"$out"
"$STAGEFS" snapshots verify paper "$SOURCE" -o "$OPTS" >/dev/null 2>&1
check_eq "the snapshot still verifies" 0 $?

mount_fs || exit 1
check "the mount no longer lists the quarantined tree" bash -c "! ls '$MNT/${SC%/*}' | grep -qx '${SC##*/}'"
check "nor the hash object" bash -c "! ls '$MNT/${JUNK%/*}' | grep -qx '${JUNK##*/}'"
check "the tree is gone at its path" test ! -e "$MNT/$SC"
# s3: this host's block cache remembers the hash object's size (it was read
# before); the first read finds it gone and forgets it
cat "$MNT/$JUNK" >/dev/null 2>&1
check_eq "reading the hash object fails" 1 $?
check "and then it is gone at its path too" test ! -e "$MNT/$JUNK"
check "nor the tree's receipt" test ! -e "$D/.receipts/scratch.zarr.json"
check "it shows what was kept" test -f "$MNT/$H5" -a -f "$MNT/$ZR/0.0" -a -f "$MNT/$SUB"
unmount_fs

# grace: not yet over, so a second run leaves the quarantine as it is
out=$(gc --referenced "$REFS")
check "a run within the grace period purges nothing ($out)" grep -q "0 purged (0 B), 0 restored, 2 in their grace period" <<<"$out"

# restore
out=$("$STAGEFS" gc restore "$SOURCE" "_trash/$SC" -o "$OPTS" 2>&1)
check_eq "gc restore exits 0 ($out)" 0 $?
check "the tree is back" test -d "$STORE/$SC"
check "its record too" test -e "$(sobj ".stagefs/objects/$SC.json")"
out=$(fsck)
check_eq "fsck is clean after the restore ($(tail -n 2 <<<"$out"))" 0 $?
mount_fs || exit 1
check_eq "the restored tree has its bytes" "$sc_md5" "$(cd "$MNT/$SC" && find . -type f | sort | xargs md5sum)"
check_eq "its metadata" staging/lab/Gc/scratch.zarr \
	"$(getfattr --only-values -n user.stagefs.metadata "$MNT/$SC" 2>/dev/null | json_get staging)"
check "and its receipt" test -f "$D/.receipts/scratch.zarr.json"
out=$($PY -c 'import sys, zarr, numpy as np; z = zarr.open(sys.argv[1], mode="r"); print((z[:] == np.arange(320).reshape(20, 16)).all())' "$MNT/$SC" 2>&1)
check_eq "zarr reads the restored tree" True "$out"
unmount_fs
out=$("$STAGEFS" gc restore "$SOURCE" "$SC" -o "$OPTS" 2>&1)
check_eq "restoring what is not in the quarantine: exit 1" 1 $?
check "saying so ($out)" grep -q "not in the quarantine" <<<"$out"

# after the grace period: purged if still unreferenced, restored if referenced again
out=$(gc --referenced "$REFS" --grace 0)
check_eq "gc --grace 0 exits 0 ($(tail -n 1 <<<"$out"))" 0 $?
check "it purges the hash object ($out)" grep -q "^purged $JUNK " <<<"$out"
check "and quarantines the restored tree again" grep -q "^quarantined $SC " <<<"$out"
check "the purged object is gone from the store" test ! -e "$(sobj "_trash/$JUNK")"
check "with its record" test ! -e "$(sobj "_trash/.stagefs/objects/$JUNK.json")"
check "and its note" test ! -e "$(sobj "_trash/.stagefs/gc/$JUNK.json")"
echo "$SC" >>"$REFS"
touch -d '+2 minutes' "$REFS"
out=$(gc --referenced "$REFS" --grace 0)
check "a quarantined object referenced again is restored ($out)" grep -q "^restored $SC (referenced again)" <<<"$out"
check "it is back in the store" test -d "$STORE/$SC"
out=$(fsck)
check_eq "fsck is clean at the end ($(tail -n 2 <<<"$out"))" 0 $?

# a snapshot gc cannot read: nothing done
part=$(skeys _snapshots | grep '/part-' | head -n 1)
mv "$(sobj "$part")" "$T/part.save"
sed -i "\|^$SC\$|d" "$REFS"
touch -d '+2 minutes' "$REFS"
before=$(state)
out=$(gc --referenced "$REFS" --grace 0)
check_eq "an unreadable snapshot: exit 1" 1 $?
check "saying which ($out)" grep -q "snapshot 'paper' cannot be read" <<<"$out"
check_eq "and nothing changed" "$before" "$(state)"
mv "$T/part.save" "$(sobj "$part")"

# usage
check_eq "gc without --referenced is a usage error" 2 "$("$STAGEFS" gc "$SOURCE" >/dev/null 2>&1; echo $?)"
check_eq "gc --grace with a bad value is a usage error" 2 \
	"$("$STAGEFS" gc "$SOURCE" --referenced "$REFS" --grace soon >/dev/null 2>&1; echo $?)"
check_eq "gc --help exits 0" 0 "$("$STAGEFS" gc --help >/dev/null 2>&1; echo $?)"

#!/bin/bash
# stagefs fsck and stagefs reindex against a real store (SPEC §6): a clean
# store is clean (exit 0); each kind of damage is found (exit 1) and named:
# a missing object, a file of another size, other bytes of the same size
# (--deep only), a canonical file no commit recorded, an object the index
# lost (--repair indexes it from its record), a receipt without its object, a
# snapshot listing a file the store lacks.  reindex rebuilds the index from
# the store alone (a big directory's files from its record's parts) and a
# mount on it serves the same tree, receipts included.
. "$(dirname "$0")/lib.sh"

D=$S/lab/Fsck
mount_fs || exit 1
mkdir -p "$D"
out=$($PY - "$D" <<'PYEOF' 2>&1
import sys, numpy as np, h5py, zarr
d = sys.argv[1]
with h5py.File(d + "/rec.h5", "w") as f:
    f.create_dataset("v", data=np.arange(20000, dtype="f4"), chunks=(1000,))
z = zarr.open(d + "/frames.zarr", mode="w", shape=(40, 64), chunks=(4, 64), dtype="u2")
z[:] = np.arange(40 * 64).reshape(40, 64)
print("ok")
PYEOF
)
check_eq "h5py and zarr write in staging" ok "$out"
printf 'some notes\n' >"$D/notes.txt"
check_eq "commit the HDF5 file" OK "$(commit "$D/rec.h5" '{"field":"raw","key":{"id":1},"token":"fsckTOK1"}')"
check_eq "commit the zarr tree" OK "$(commit "$D/frames.zarr" '{"field":"frames","key":{"id":1},"token":"fsckTOK2"}')"
check_eq "commit the notes by hash" OK "$(commit "$D/notes.txt" hash)"
# a directory of more files than a record holds inline (1000): its record keeps them in parts
mkdir -p "$D/many"
$PY -c 'import sys
for i in range(1200):
    open("%s/c%04d" % (sys.argv[1], i), "w").write("chunk %d" % i)' "$D/many"
check_eq "commit a 1200-file directory" OK "$(commit "$D/many" '{"field":"many","key":{"id":1},"token":"fsckTOK3"}')"
MK=_schema/lab/Fsck/id=1/many_fsckTOK3
check "its record names one part of files" grep -q '"parts":1,"file_count":1200' "$(sobj ".stagefs/objects/$MK.json")"
check "and the part is in the store" test -f "$(sobj ".stagefs/objects/$MK.json.parts/00000.json.gz")"
H5=_schema/lab/Fsck/id=1/raw_fsckTOK1.h5
ZR=_schema/lab/Fsck/id=1/frames_fsckTOK2.zarr
HK=$(cd "$MNT" && find _hash -type f | head -n 1)
check "the hash-addressed notes are canonical ($HK)" test -n "$HK"
listing() { (cd "$MNT" && find _schema _hash -printf '%p %y %s\n' | sort && cat staging/lab/Fsck/.receipts/*.json); }
before=$(listing)
"$STAGEFS" publish "$MNT" fsck1 >/dev/null 2>&1
check_eq "publish a snapshot" 0 $?
unmount_fs

OPTS="index=$INDEX,$BACKEND_OPTS"
fsck() { "$STAGEFS" fsck "$SOURCE" -o "$OPTS" "$@" 2>&1; }

out=$(fsck)
check_eq "a clean store: fsck exits 0 ($(tail -n 2 <<<"$out"))" 0 $?
check "it counts what it checked" grep -qE "^4 objects, [0-9]+ indexed files, [0-9]+ files in the store, 4 records: 0 problem" <<<"$out"
out=$(fsck --deep)
check_eq "a clean store: fsck --deep exits 0 ($(tail -n 2 <<<"$out"))" 0 $?

# other bytes of the same size: only --deep reads them
h5=$(sobj "$H5")
cp "$h5" "$T/h5.keep"
printf 'X' | dd of="$h5" bs=1 seek=5000 conv=notrunc status=none
out=$(fsck)
check_eq "same size, other bytes: plain fsck does not read bytes" 0 $?
out=$(fsck --deep)
check_eq "fsck --deep exits 1" 1 $?
check "and names the file ($out)" grep -q "'$H5' holds other bytes than committed" <<<"$out"
cp "$T/h5.keep" "$h5"

# a chunk of the zarr tree of another size
chunk=$(sobj "$ZR/3.0")
cp "$chunk" "$T/chunk.keep"
printf 'more' >>"$chunk"
out=$(fsck)
check_eq "a chunk of another size: fsck exits 1" 1 $?
check "and names it with both sizes" grep -qE "'$ZR/3.0' has [0-9]+ bytes in the store, [0-9]+ in the index" <<<"$out"
# the chunk gone: missing from the store, and the snapshot lists it
rm -f "$chunk"
out=$(fsck)
check_eq "a missing chunk: fsck exits 1" 1 $?
check "it is in the index but not in the store" grep -q "'$ZR/3.0' is in the index but not in the store" <<<"$out"
check "and snapshot fsck1 lists it" grep -q "snapshot 'fsck1' lists '$ZR/3.0', which the store lacks" <<<"$out"
cp "$T/chunk.keep" "$chunk"
[ "$BACKEND" = s3 ] || touch -r "$T/chunk.keep" "$chunk"
check_eq "restored: clean again" 0 "$(fsck >/dev/null; echo $?)"

# a canonical file nobody committed (another tool wrote into the store)
stray=_schema/lab/Fsck/id=1/stray.bin
if [ "$BACKEND" = s3 ]; then
	curl -s -o /dev/null -X PUT --data-binary 'stray' \
		"http://127.0.0.1:$S3_PORT/stagefs-test/p/$stray"
else
	printf 'stray' >"$STORE/$stray"
fi
out=$(fsck)
check_eq "an unindexed canonical file: fsck exits 1" 1 $?
check "and names it" grep -q "'$stray' is in the store but not in the index" <<<"$out"
if [ "$BACKEND" = s3 ]; then
	curl -s -o /dev/null -X DELETE "http://127.0.0.1:$S3_PORT/stagefs-test/p/$stray"
else
	rm -f "$STORE/$stray"
fi

# the index lost an object: its record brings it back
cp "$INDEX" "$T/index.keep"
$PY - "$INDEX" "$ZR" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("DELETE FROM objects WHERE path=?", (sys.argv[2],))
db.execute("DELETE FROM object_files WHERE object=?", (sys.argv[2],))
db.commit()
PYEOF
out=$(fsck)
check_eq "an object the index lost: fsck exits 1" 1 $?
check "it is in the store with its record" grep -q "'$ZR' is in the store with its record but not in the index" <<<"$out"
check "its files are unindexed" grep -q "'$ZR/0.0' is in the store but not in the index" <<<"$out"
check "its receipt names an object the index does not know" grep -q "receipt 'staging/lab/Fsck/.receipts/frames.zarr.json' names '$ZR'" <<<"$out"
out=$(fsck --repair)
check_eq "fsck --repair exits 0: everything it found it could repair ($(tail -n 3 <<<"$out"))" 0 $?
check "it says what it did" grep -q "repaired: '$ZR' added to the index from its record" <<<"$out"
check_eq "clean afterwards" 0 "$(fsck >/dev/null; echo $?)"

# reindex: the index from the store alone
check_eq "reindex refuses to replace an index without --force" 1 \
	"$("$STAGEFS" reindex "$SOURCE" -o "$OPTS" >/dev/null 2>&1; echo $?)"
mv "$INDEX" "$T/index.orig"
rm -f "$INDEX-wal" "$INDEX-shm"
out=$("$STAGEFS" reindex "$SOURCE" -o "$OPTS" 2>&1)
check_eq "reindex on a lost index exits 0 ($out)" 0 $?
check "it reports 4 objects, no file without a record" grep -q "reindexed 4 objects and 0 receipts of dedup commits into .*; 0 of [0-9]* canonical files have no record" <<<"$out"
check_eq "the 1200 files of the directory came back from its record's part" 1200 \
	"$($PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM object_files WHERE object=?", (sys.argv[2],)).fetchone()[0])' "$INDEX" "$MK")"
out=$(fsck --deep)
check_eq "fsck --deep of the rebuilt index is clean ($(tail -n 2 <<<"$out"))" 0 $?
mount_fs || exit 1
check_eq "a mount on the rebuilt index serves the same tree and receipts" "$before" "$(listing)"
check_eq "the HDF5 file's metadata came back" staging/lab/Fsck/rec.h5 \
	"$(getfattr --only-values -n user.stagefs.metadata "$MNT/$H5" 2>/dev/null | json_get staging)"
out=$($PY - "$MNT/$ZR" "$MNT/$H5" <<'PYEOF' 2>&1
import sys, numpy as np, h5py, zarr
z = zarr.open(sys.argv[1], mode="r")
assert (z[:] == np.arange(40 * 64).reshape(40, 64)).all()
with h5py.File(sys.argv[2], "r") as f:
    assert (f["v"][:] == np.arange(20000, dtype="f4")).all()
print("ok")
PYEOF
)
check_eq "zarr and h5py read the objects through the rebuilt index" ok "$out"
check_eq "a hash commit of the same bytes dedups against the rebuilt index" OK \
	"$(printf 'some notes\n' >"$D/again.txt" && commit "$D/again.txt" hash)"
check "the receipt says dedup" grep -q '"dedup": *true' "$D/.receipts/again.txt.json"
dedup_receipt=$(cat "$D/.receipts/again.txt.json")
check "no object record holds it: a receipt record in the store does" \
	grep -q '"object":"'"$HK"'"' "$(sobj .stagefs/receipts/lab/Fsck/again.txt.json)"
unmount_fs
out=$("$STAGEFS" reindex "$SOURCE" -o "$OPTS" --force 2>&1)
check_eq "reindex --force replaces it and keeps the old one" 0 $?
check "the old one is kept" test -f "$INDEX.old"
check "it reports the dedup commit's receipt ($out)" grep -q "reindexed 4 objects and 1 receipts of dedup commits" <<<"$out"
mount_fs || exit 1
check_eq "the dedup commit's receipt came back" "$dedup_receipt" "$(cat "$D/.receipts/again.txt.json" 2>&1)"
check_eq "and the first commit's of the same bytes stays" "$(grep -o '"staging": *"[^"]*"' <<<"$before" | grep -c notes.txt)" \
	"$(cat "$D/.receipts/notes.txt.json" | grep -o '"staging": *"[^"]*"' | grep -c notes.txt)"
unmount_fs

# usage
check_eq "fsck without SOURCE is a usage error" 2 "$("$STAGEFS" fsck >/dev/null 2>&1; echo $?)"
check_eq "fsck --help exits 0" 0 "$("$STAGEFS" fsck --help >/dev/null 2>&1; echo $?)"

#!/bin/bash
# Published snapshots (SPEC §5): publish, mount on a host whose index never saw
# the store (byte for byte, h5py and zarr open it, every change EROFS), the
# live mount's .snapshots/, list/show/diff/verify/delete, a name claimed once
# (also by two daemons at the same instant), prefixes, tampering found by
# verify, and a crash in the middle of a publish.
. "$(dirname "$0")/lib.sh"

# s3rver ignores If-None-Match (a publish then claims its name by HEAD then PUT,
# which two daemons can both pass); the proxy honours it, as S3 and Ceph RGW do
if [ "$BACKEND" = s3 ] && [ -z "$VERIFY_PORT" ]; then
	proxy_start || exit 1
fi
mount_fs || exit 1
D=$S/lab/Rec
mkdir -p "$D"
out=$($PY - "$D" <<'PYEOF' 2>&1
import sys, numpy as np, h5py, zarr
d = sys.argv[1]
with h5py.File(d + "/rec.h5", "w") as f:
    f.create_dataset("v", data=np.arange(10000, dtype="f4"), chunks=(1000,), compression="gzip")
z = zarr.open(d + "/frames.zarr", mode="w", shape=(40, 64), chunks=(4, 64), dtype="u2")
z[:] = np.arange(40 * 64).reshape(40, 64)
print("ok")
PYEOF
)
check_eq "h5py and zarr write in staging" ok "$out"
printf 'notes' >"$D/notes.txt"
check_eq "commit the HDF5 file" OK "$(commit "$D/rec.h5" '{"field":"raw","key":{"id":1},"token":"snapTOK1"}')"
check_eq "commit the zarr tree" OK "$(commit "$D/frames.zarr" '{"field":"frames","key":{"id":1},"token":"snapTOK2"}')"
check_eq "commit the notes by hash" OK "$(commit "$D/notes.txt" hash)"
H5=_schema/lab/Rec/id=1/raw_snapTOK1.h5
ZR=_schema/lab/Rec/id=1/frames_snapTOK2.zarr

# tree DIR: every file below DIR with its size and md5, sorted (a listing and its bytes)
tree() { (cd "$1" && find . -type f -printf '%P %s\n' | sort | while read -r p s; do echo "$p $s $(md5sum <"$p" | cut -c1-32)"; done); }
canon=$(for r in _schema _hash; do tree "$MNT/$r" | sed "s|^|$r/|"; done)

# publish
out=$("$STAGEFS" publish "$MNT" v1 --message "for the paper" 2>&1)
check_eq "publish v1 exits 0" 0 $?
check "it prints entries, bytes and the checksum ($out)" grep -qE "entries .* bytes .* checksum [0-9a-f]{32}-[0-9]+--[0-9]+" <<<"$out"
head=$(getfattr --only-values -n user.stagefs.snapshot "$MNT/.snapshots/v1" 2>/dev/null)
check_eq "the head names itself" v1 "$(json_get name <<<"$head")"
check_eq "the head says what it holds: 3 objects" 3 "$(json_get objects <<<"$head")"
check_eq "and the message" "for the paper" "$(json_get message <<<"$head")"
check_eq "the head is in the store, readable without stagefs" v1 \
	"$(cat "$(sobj _snapshots/v1/snapshot.json)" | json_get name)"
part=$(json_get parts <<<"$head" | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["key"])')
check_eq "a part is gzip'd JSON of entries" "$(json_get entries <<<"$head")" \
	"$(zcat "$(sobj "$part")" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')"
check_eq "the checksum is DANDI's zarr checksum of the files" "$(json_get checksum <<<"$head")" \
	"$($PY "$TESTS_DIR/dandi_checksum.py" "$MNT/.snapshots/v1")"

# later commits are not in it; the live mount's .snapshots/ shows it
printf 'later' >"$D/later.txt"
check_eq "a later commit" OK "$(commit "$D/later.txt" hash)"
check_eq ".snapshots/ lists v1" v1 "$(ls "$MNT/.snapshots")"
check_eq ".snapshots/v1 holds the tree at publish time" "$canon" \
	"$(for r in _schema _hash; do tree "$MNT/.snapshots/v1/$r" | sed "s|^|$r/|"; done)"
check_eq "diff v1 live: exactly the later commit" \
	"+ _hash/lab/$($PY -c 'import base64,hashlib;print(base64.b32encode(hashlib.md5(b"later").digest()).decode().lower().rstrip("="))')" \
	"$("$STAGEFS" snapshots diff v1 live "$MNT" 2>&1)"

# mount it on a fresh index and cache (another host)
mount_second -o "snapshot=v1,cache_dir=$T/cache2" || exit 1
check_eq "the snapshot mount: every byte and listing of the canonical tree then" "$canon" \
	"$(for r in _schema _hash; do tree "$MNT2/$r" | sed "s|^|$r/|"; done)"
check_eq "no staging/, no later objects" "_hash _schema" "$(ls "$MNT2" | xargs)"
out=$($PY - "$MNT2/$H5" "$MNT2/$ZR" <<'PYEOF' 2>&1
import sys, numpy as np, h5py, zarr
with h5py.File(sys.argv[1], "r") as f:
    assert (f["v"][:] == np.arange(10000, dtype="f4")).all()
z = zarr.open(sys.argv[2], mode="r")
assert (z[:] == np.arange(40 * 64).reshape(40, 64)).all()
print("ok")
PYEOF
)
check_eq "h5py and zarr open the snapshot" ok "$out"
check_eq "a snapshot object carries its receipt" "$H5" \
	"$(getfattr --only-values -n user.stagefs.metadata "$MNT2/$H5" 2>/dev/null | json_get path)"
for op in "create $MNT2/new" "mkdir $MNT2/_schema/new" "unlink $MNT2/$H5" "rmdir $MNT2/_hash" \
	"rename $MNT2/$H5 $MNT2/_schema/x" "open_w $MNT2/$H5" "open_trunc $MNT2/$H5" \
	"truncate $MNT2/$H5 0" "chmod $MNT2/$H5 600" "setxattr $MNT2/$H5 user.x 1" \
	"symlink x $MNT2/_schema/l" "link $MNT2/$H5 $MNT2/_schema/l"; do
	# shellcheck disable=SC2086
	expect_errno $op EROFS
done
check_eq "statvfs says read-only" 1 "$($PY -c "import os; print(os.statvfs('$MNT2').f_flag & os.ST_RDONLY)")"
unmount_second
check "the manifest is cached, keyed by the head's digest" \
	test -f "$T/cache2/snapshots/$(md5sum <"$(sobj _snapshots/v1/snapshot.json)" | cut -c1-32).db"
mv "$(sobj "$part")" "$T/part.save"
mount_second -o "snapshot=v1,cache_dir=$T/cache2" || exit 1
check_eq "a second mount serves from the cache (the part is not read)" "$canon" \
	"$(for r in _schema _hash; do tree "$MNT2/$r" | sed "s|^|$r/|"; done)"
unmount_second
mv "$T/part.save" "$(sobj "$part")"

# the name is claimed once
out=$("$STAGEFS" publish "$MNT" v1 2>&1)
check_eq "publish v1 again: exit 1" 1 $?
check "it says the name exists ($out)" grep -q "exists" <<<"$out"
for bad in "a/b" ".." "" "$(printf 'x%.0s' $(seq 1 129))" "sp ace"; do
	"$STAGEFS" publish "$MNT" "$bad" >/dev/null 2>&1
	check_eq "publish '$bad': a usage error" 2 $?
done
mount_second || exit 1
"$STAGEFS" publish "$MNT" race >"$T/race1" 2>&1 &
p1=$!
"$STAGEFS" publish "$MNT2" race >"$T/race2" 2>&1 &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
check_eq "two daemons publish one name at once: one wins" "0 1" "$(printf '%s\n' $r1 $r2 | sort | xargs)"
check "and the winner's snapshot verifies" "$STAGEFS" snapshots verify race "$MNT"
unmount_second

# a prefix holds only its subtree
check "publish with a prefix" "$STAGEFS" publish "$MNT" zarronly --prefix "$MNT/$ZR"
check_eq "it holds only the zarr tree" "$(tree "$MNT/$ZR")" "$(tree "$MNT/.snapshots/zarronly/$ZR")"
check_eq "and nothing beside it" "_schema" "$(ls "$MNT/.snapshots/zarronly")"
"$STAGEFS" publish "$MNT" badprefix --prefix staging/lab >/dev/null 2>&1
check_eq "a prefix outside the canonical trees: exit 1" 1 $?

# list, show
out=$("$STAGEFS" snapshots list "$MNT")
check "list shows v1, race and zarronly" bash -c "grep -q '^v1 ' <<<'$out' && grep -q '^race ' <<<'$out' && grep -q '^zarronly ' <<<'$out'"
check_eq "show --json gives the head" v1 "$("$STAGEFS" snapshots show v1 "$MNT" --json | json_get name)"
"$STAGEFS" snapshots show nosuch "$MNT" >/dev/null 2>&1
check_eq "show of a name never published: exit 1" 1 $?

# verify finds tampering and loss in the store
check "verify v1" "$STAGEFS" snapshots verify v1 "$MNT" --jobs 3
zchunk=$(cd "$MNT" && find "$ZR" -type f -name '1.0')
cp "$(sobj "$zchunk")" "$T/chunk.save"
printf 'X' | dd of="$(sobj "$zchunk")" bs=1 seek=3 conv=notrunc status=none
out=$("$STAGEFS" snapshots verify v1 "$MNT" 2>&1)
check_eq "a corrupted object: verify exits 1" 1 $?
check "it names the object ($out)" grep -q "'$zchunk' differs" <<<"$out"
cp "$T/chunk.save" "$(sobj "$zchunk")"
mv "$(sobj "$H5")" "$T/h5.save"
out=$("$STAGEFS" snapshots verify v1 "$MNT" 2>&1)
check_eq "a missing object: verify exits 1" 1 $?
check "it names the object ($out)" grep -q "'$H5' is missing" <<<"$out"
mv "$T/h5.save" "$(sobj "$H5")"
check "restored: verify passes again" "$STAGEFS" snapshots verify v1 "$MNT"

# an object the index knows but the store lacks: publish refuses, naming it
mv "$(sobj "$H5")" "$T/h5.save"
out=$("$STAGEFS" publish "$MNT" holes 2>&1)
check_eq "publish with an object missing from the store: exit 1" 1 $?
check "it names the object and says what to run ($out)" grep -q "not in the store ('$H5' first); run stagefs fsck" <<<"$out"
mv "$T/h5.save" "$(sobj "$H5")"
"$STAGEFS" snapshots show holes "$MNT" >/dev/null 2>&1
check_eq "and no snapshot 'holes' was made" 1 $?

# delete leaves a tombstone
check "delete race" "$STAGEFS" snapshots delete race "$MNT"
out=$("$STAGEFS" snapshots show race "$MNT" 2>&1)
check "show says it was deleted ($out)" grep -q "was deleted" <<<"$out"
out=$("$STAGEFS" publish "$MNT" race 2>&1)
check_eq "a deleted name cannot be published again" 1 $?
check "and says when it was deleted ($out)" grep -q "was deleted on" <<<"$out"
out=$("$STAGEFS" -f -o "snapshot=race,index=$T/i3.db${BACKEND_OPTS:+,$BACKEND_OPTS}" "$SOURCE" "$T/mnt2" 2>&1)
check_eq "mounting a deleted snapshot: exit 1" 1 $?
check "saying so ($out)" grep -q "deleted" <<<"$out"
check "the objects it listed stay" test -f "$(sobj "$H5")"

# a crash in the middle of a publish: no snapshot, or the whole one
unmount_fs
STAGEFS_FAULTS=publish-parts-written=kill mount_fs || exit 1
"$STAGEFS" publish "$MNT" crash1 >/dev/null 2>&1
kill_daemon
mount_fs || exit 1
"$STAGEFS" snapshots show crash1 "$MNT" >/dev/null 2>&1
check_eq "killed before the head: no snapshot crash1" 1 $?
check "and crash1 can be published after all" "$STAGEFS" publish "$MNT" crash1
unmount_fs
STAGEFS_FAULTS=publish-head-written=kill mount_fs || exit 1
"$STAGEFS" publish "$MNT" crash2 >/dev/null 2>&1
kill_daemon
mount_fs || exit 1
check "killed after the head: the whole snapshot crash2" "$STAGEFS" snapshots verify crash2 "$MNT"
later=_hash/lab/$($PY -c 'import base64,hashlib;print(base64.b32encode(hashlib.md5(b"later").digest()).decode().lower().rstrip("="))')
check_eq "diff of two snapshots: exactly what was committed between them" "+ $later" \
	"$("$STAGEFS" snapshots diff v1 crash2 "$MNT" 2>&1)"
check_eq "and the other way round" "- $later" "$("$STAGEFS" snapshots diff crash2 v1 "$MNT" 2>&1)"
check_eq "a snapshot against itself: no difference" "" "$("$STAGEFS" snapshots diff v1 v1 "$MNT" 2>&1)"

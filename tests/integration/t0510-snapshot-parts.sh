#!/bin/bash
# A snapshot bigger than one manifest part (10,000 entries) and than one verify
# batch (10,000 files): a 12,345-file directory object is published as two
# parts, mounted on a host whose index never saw it, listed in full (ls -l,
# find, os.scandir; also under .snapshots/ with max_inodes below the file
# count, so idle snapshot inodes are reclaimed), its checksum DANDI's over the
# mount, verified, and a corrupted file in the second batch found by name.
. "$(dirname "$0")/lib.sh"

N=12345
mount_fs || exit 1
D=$S/lab/Big
mkdir -p "$D"
out=$($PY - "$D/cells.zarr" "$N" <<'PYEOF' 2>&1
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
for i in range(n):
    with open("%s/%d" % (d, i), "wb") as f:
        f.write(b"cell %d\n" % i)
print(len(os.listdir(d)))
PYEOF
)
check_eq "$N files written in staging" "$N" "$out"
check_eq "commit the directory" OK "$(commit "$D/cells.zarr" '{"field":"cells","key":{"id":7},"token":"bigTOK01"}')"
OBJ=_schema/lab/Big/id=7/cells_bigTOK01.zarr

out=$("$STAGEFS" publish "$MNT" big 2>&1)
check_eq "publish exits 0 ($out)" 0 $?
head=$(getfattr --only-values -n user.stagefs.snapshot "$MNT/.snapshots/big" 2>/dev/null)
check_eq "the head counts the files" "$N" "$(json_get files <<<"$head")"
nparts=$(json_get parts <<<"$head" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')
check_eq "more entries than a part holds: two parts" 2 "$nparts"
sum=$(json_get parts <<<"$head" | $PY -c 'import json,sys; print(sum(p["entries"] for p in json.load(sys.stdin)))')
check_eq "the parts hold every entry" "$(json_get entries <<<"$head")" "$sum"

# another host: a fresh index, the snapshot read from its parts
mount_second -o "snapshot=big,cache_dir=$T/cache2" || exit 1
check_eq "ls -l lists every file" "$N" "$(ls -l "$MNT2/$OBJ" | grep -c '^-')"
check_eq "find sees every file" "$N" "$(find "$MNT2/$OBJ" -type f | wc -l)"
check_eq "os.scandir sees every file, with sizes" "$N" "$($PY -c '
import os, sys
print(sum(1 for e in os.scandir(sys.argv[1]) if e.is_file() and e.stat().st_size > 0))' "$MNT2/$OBJ")"
check_eq "a file in the second part reads back" "cell 12344" "$(cat "$MNT2/$OBJ/12344")"
check_eq "the checksum is DANDI's over the mounted tree" "$(json_get checksum <<<"$head")" \
	"$($PY "$TESTS_DIR/dandi_checksum.py" "$MNT2")"
unmount_second

# the same snapshot under the live mount's .snapshots/, with max_inodes far below
# its file count: idle snapshot inodes are reclaimed as staging ones are
remount -o max_inodes=1000 || exit 1
V=$MNT/.snapshots/big/$OBJ
# a listing past max_inodes hands out names without inodes (find stats nothing):
# the reclaim, asynchronous, has not had to drop any of them
check_eq "under .snapshots/: find sees every file" "$N" "$(find "$V" -type f | wc -l)"
st=$(xget "$MNT" user.stagefs.status)
check "find made at most max_inodes inodes, not one per name ($st)" \
	test "$(sed -E 's/^inodes ([0-9]+).*/\1/' <<<"$st")" -le 1000
check_eq "ls -l lists every file" "$N" "$(ls -l "$V" | grep -c '^-')"
check_eq "os.scandir + stat sees every file" "$N" "$($PY -c '
import os, sys
print(sum(1 for e in os.scandir(sys.argv[1]) if e.stat().st_size > 0))' "$V")"
st=$(xget "$MNT" user.stagefs.status)
check "the daemon asked the kernel to drop idle snapshot inodes ($st)" \
	test "$(sed -E 's/.*reclaimed ([0-9]+).*/\1/' <<<"$st")" -gt 0
for _ in $(seq 50); do # FORGETs arrive asynchronously
	[ "$(sed -E 's/^inodes ([0-9]+).*/\1/' <<<"$st")" -le 1500 ] && break
	sleep 0.1
	st=$(xget "$MNT" user.stagefs.status)
done
check "it keeps near max_inodes inodes, not $N ($st)" \
	test "$(sed -E 's/^inodes ([0-9]+).*/\1/' <<<"$st")" -le 1500
check_eq "a reclaimed file reads back" "cell 5" "$(cat "$V/5")"

check "verify reads every file, in batches" "$STAGEFS" snapshots verify big "$MNT" --jobs 2
# "9999" sorts last of the object's file names: it is read in the second batch
late=$OBJ/9999
cp "$(sobj "$late")" "$T/late.save"
printf 'X' | dd of="$(sobj "$late")" bs=1 seek=1 conv=notrunc status=none
out=$("$STAGEFS" snapshots verify big "$MNT" 2>&1)
check_eq "a corrupted file in the second batch: verify exits 1" 1 $?
check "it names the file ($out)" grep -q "'$late' differs" <<<"$out"
check_eq "and only that one" 1 "$(grep -c differs <<<"$out")"
cp "$T/late.save" "$(sobj "$late")"
check "restored: verify passes" "$STAGEFS" snapshots verify big "$MNT"
unmount_fs

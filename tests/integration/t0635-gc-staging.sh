#!/bin/bash
# stagefs gc --staging-older-than against a real store: staging entries
# (an HDF5 file, a zarr tree) in which nothing changed for longer than the
# limit go to the quarantine (--dry-run first: it says so and changes
# nothing); a recent entry and one whose commit failed (it waits for
# `stagefs jobs --retry`) stay.  A mount on a fresh cache no longer lists the
# quarantined entries, gc list shows them, gc restore brings one back (h5py
# reads it), a name taken again is not overwritten, and after the grace
# period a run purges what is left.  A run without a reference list never
# purges a quarantined canonical object: that needs the list's re-check.
. "$(dirname "$0")/lib.sh"

D=$S/lab/Old
mount_fs || exit 1
mkdir -p "$D"
out=$($PY - "$D" <<'PYEOF' 2>&1
import sys, numpy as np, h5py, zarr
d = sys.argv[1]
with h5py.File(d + "/old.h5", "w") as f:
    f.create_dataset("v", data=np.arange(3000, dtype="f4"))
z = zarr.open(d + "/old.zarr", mode="w", shape=(20, 16), chunks=(4, 16), dtype="u2")
z[:] = np.arange(20 * 16).reshape(20, 16)
print("ok")
PYEOF
)
check_eq "h5py and zarr write in staging" ok "$out"
printf 'a failed commit waits for a retry\n' >"$D/busy.txt"
printf 'kept by the list\n' >"$D/keep.txt"
printf 'not on the list\n' >"$D/drop.txt"
check_eq "commit a file the reference list names" OK "$(commit "$D/keep.txt" '{"field":"k","key":{"id":1},"token":"stgTOK01"}')"
check_eq "commit a file it does not" OK "$(commit "$D/drop.txt" '{"field":"d","key":{"id":1},"token":"stgTOK02"}')"
printf 'the same bytes twice\n' >"$D/dup1.txt"
cp "$D/dup1.txt" "$D/dup2.txt"
check_eq "commit a file by hash" OK "$(commit "$D/dup1.txt" hash)"
check_eq "commit the same bytes again: a dedup" OK "$(commit "$D/dup2.txt" hash)"
HK=$(json_get path <"$D/.receipts/dup1.txt.json")
dup2_receipt=$(cat "$D/.receipts/dup2.txt.json")
h5_md5=$(md5sum <"$D/old.h5")
unmount_fs
sqlite3 "$INDEX" "INSERT INTO jobs(staging,value,status,error) VALUES('lab/Old/busy.txt','{}','error','test: failed')"
check_eq "the failed job is in the index" 1 "$(sqlite3 "$INDEX" "SELECT count(*) FROM jobs WHERE status='error'")"
# everything above is 6 s old when the recent file is written; the limit is 3 s
sleep 6
mount_fs || exit 1
printf 'written just now\n' >"$D/new.txt"
unmount_fs
LIMIT=0.0000347 # days: 3 s

OPTS="index=$INDEX,$BACKEND_OPTS"
gc() { "$STAGEFS" gc "$SOURCE" -o "$OPTS" "$@" 2>&1; }
state() { (cd "$STORE" && find . | sort); }
before=$(state)
out=$(gc --staging-older-than "$LIMIT" --dry-run)
check_eq "--dry-run exits 0 ($(tail -n 2 <<<"$out" | head -1))" 0 $?
check "it would quarantine the HDF5 file ($out)" grep -q "would quarantine _staging/lab/Old/old.h5 " <<<"$out"
check "and the zarr tree" grep -q "would quarantine _staging/lab/Old/old.zarr " <<<"$out"
check "not the recent file" test "$(grep -c 'new.txt' <<<"$out")" -eq 0
check "not the entry whose commit failed" grep -q "kept _staging/lab/Old/busy.txt: its commit (job [0-9]*) is error" <<<"$out"
check_eq "the dry run changed nothing" "$before" "$(state)"

out=$(gc --staging-older-than "$LIMIT")
check_eq "gc --staging-older-than exits 0 ($(tail -n 2 <<<"$out" | head -1))" 0 $?
check "it counts the entries ($out)" grep -q "4 staging entries: 1 changed in the last 3 s, 1 being committed, 2 quarantined" <<<"$out"
check "the HDF5 file is in _trash/_staging/" test -n "$(skeys _trash/_staging/lab/Old | grep 'old.h5$')"
check_eq "every chunk of the zarr tree is there too" 6 "$(skeys _trash/_staging/lab/Old/old.zarr | wc -l)"
check_eq "nothing of them is left in _staging/" "" "$(skeys _staging/lab/Old | grep old)"
check "the recent file and the failed commit's entry stay" \
	test "$(skeys _staging/lab/Old | grep -c -e 'new.txt$' -e 'busy.txt$')" -eq 2
out=$("$STAGEFS" gc list "$SOURCE" -o "$OPTS" 2>&1)
check "gc list shows both ($out)" test "$(grep -c '^_staging/lab/Old/old' <<<"$out")" -eq 2

# a workstation that never held them (its own cache) no longer sees them
mount_fs -o cache_dir="$T/cache2" || exit 1
check_eq "staging lists what is left" "busy.txt new.txt" "$(ls "$D" | grep -v -e keep -e drop | xargs)"
unmount_fs

out=$("$STAGEFS" gc restore "$SOURCE" _staging/lab/Old/old.h5 -o "$OPTS" 2>&1)
check_eq "gc restore exits 0 ($out)" 0 $?
mount_fs -o cache_dir="$T/cache3" || exit 1
check_eq "the restored HDF5 file is back, byte for byte" "$h5_md5" "$(md5sum <"$D/old.h5")"
check_eq "h5py reads it" 2999.0 "$($PY -c 'import h5py,sys; print(h5py.File(sys.argv[1],"r")["v"][-1])' "$D/old.h5")"
mkdir "$D/old.zarr"
printf 'a new entry of that name\n' >"$D/old.zarr/.zattrs"
unmount_fs
out=$("$STAGEFS" gc restore "$SOURCE" _staging/lab/Old/old.zarr -o "$OPTS" 2>&1)
check_eq "a restore over a name taken again exits 1" 1 $?
check "and says so ($out)" grep -q "exists" <<<"$out"
check_eq "the new entry is untouched" "a new entry of that name" "$(cat "$(sobj _staging/lab/Old/old.zarr/.zattrs)")"

# an object quarantined by a run with a reference list ...
REFS=$T/refs.txt
printf '%s\n' _schema/lab/Old/id=1/k_stgTOK01.txt >"$REFS"
touch -d '+2 minutes' "$REFS"
out=$(gc --referenced "$REFS")
check "a run with a list quarantines the unlisted object ($out)" grep -q "^quarantined _schema/lab/Old/id=1/d_stgTOK02.txt" <<<"$out"
check "and the hash object" grep -q "^quarantined $HK " <<<"$out"
out=$("$STAGEFS" gc restore "$SOURCE" "$HK" -o "$OPTS" 2>&1)
check_eq "gc restore of the hash object exits 0 ($out)" 0 $?
mount_fs -o cache_dir="$T/cache4" || exit 1
check_eq "its first receipt is back" "$HK" "$(json_get path <"$D/.receipts/dup1.txt.json" 2>&1)"
check_eq "and the dedup commit's, byte for byte" "$dup2_receipt" "$(cat "$D/.receipts/dup2.txt.json" 2>&1)"
unmount_fs
# ... is not purged by a run without one, whatever the grace period
out=$(gc --staging-older-than 1000 --grace 0)
check_eq "a staging-only run with --grace 0 exits 0 ($out)" 0 $?
check "it purges the quarantined staging entry" grep -q "^purged _staging/lab/Old/old.zarr" <<<"$out"
check_eq "whose keys are gone" "" "$(skeys _trash/_staging/lab/Old/old.zarr)"
check_eq "the quarantined object waits for a run with a list" \
	"" "$(grep '_schema/lab/Old/id=1/d_stgTOK02.txt' <<<"$out")"
check "it is still in the quarantine" test -n "$(skeys _trash/_schema/lab/Old | grep d_stgTOK02)"
check "the usage names the option" grep -q -- "--staging-older-than" <<<"$("$STAGEFS" gc --help)"
check_eq "--staging-older-than with a bad value is a usage error" 2 \
	"$("$STAGEFS" gc "$SOURCE" --staging-older-than soon >/dev/null 2>&1; echo $?)"
check_eq "gc with neither a list nor a staging age is a usage error" 2 \
	"$("$STAGEFS" gc "$SOURCE" >/dev/null 2>&1; echo $?)"

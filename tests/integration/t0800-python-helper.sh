#!/bin/bash
# scripts/stagefs.py, the Python helper (stdlib only, Debian's python3): schema and
# hash commits with DataJoint's encoding of date, datetime, uuid and decimal key
# values, status, errors as OSError with the mount's reason, an async commit and
# wait(), insert() under a DataJoint table's SQL name returning the row, publish
# and snapshots; and `make install` puts it where Debian's python3 imports it (and
# the manual page, stagefs.1, where man finds it).
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1
D=$S/lab/Recording
mkdir -p "$D"
out=$(cd "$T" && STAGEFS=$(realpath "$STAGEFS") PYTHONPATH="$REPO_ROOT/scripts" $PY - "$MNT" "$D" <<'PYEOF' 2>&1
import datetime, decimal, errno, json, os, sys, uuid
import numpy as np, zarr
import stagefs

mnt, d = sys.argv[1:3]
def say(*a):
    print(*a, flush=True)

with open(f"{d}/run1.bin", "wb") as f:
    f.write(b"recording\n")
say("status", stagefs.status(f"{d}/run1.bin"))
key = {"subject_id": 1, "session_date": datetime.date(2017, 5, 15),
       "started": datetime.datetime(2024, 1, 15, 10, 30),
       "uid": uuid.UUID("0f2c6b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"),
       "gain": decimal.Decimal("1.50"), "ok": True, "rate": 2.5}
r = stagefs.commit(f"{d}/run1.bin", field="raw", key=key, token="tok12345")
say("path", r["path"])
say("read", open(os.path.join(mnt, r["path"]), "rb").read() == b"recording\n")
with open(f"{d}/notes.txt", "w") as f:
    f.write("hello")
say("hash", stagefs.commit(f"{d}/notes.txt", hash=True)["path"])
open(f"{d}/again.txt", "w").write("x")
try:
    stagefs.commit(f"{d}/again.txt", field="Raw", key={"id": 1})
except OSError as e:
    say("error", errno.errorcode[e.errno], "field" in str(e))
z = zarr.open(f"{d}/movie.zarr", mode="w", shape=(4, 8), chunks=(1, 8), dtype="i4")
z[:] = np.arange(32).reshape(4, 8)
q = stagefs.commit(f"{d}/movie.zarr", field="frames", key={"id": 7}, async_=True)
say("queued", q["queued"])
w = stagefs.wait(f"{d}/movie.zarr", timeout=60)
say("waited", w["is_dir"], w["item_count"], w["path"].endswith(".zarr"))
open(f"{d}/trace.npy", "wb").write(b"npy")
class Recording:  # what a DataJoint Manual table class answers
    table_name = "recording"
row = stagefs.insert(Recording, {"subject_id": 2}, f"{d}/trace.npy", "trace")
say("row", sorted(row), sorted(row["trace"]) == sorted(stagefs.RECEIPT_FIELDS),
    row["trace"]["path"].split("/")[:3], row["trace"]["store"])
say("table", stagefs.table_name("_recording"), stagefs.table_name(Recording))
try:
    stagefs.commit(f"{d}/x.bin", field="raw", key={"t": object()})
except TypeError:
    say("typeerror")
p = stagefs.publish(mnt, "helper", message="from python")
s = stagefs.snapshots(mnt)
say("snap", p["name"] if isinstance(p, dict) and "name" in p else json.dumps(p)[:80],
    [x["name"] for x in s] if isinstance(s, list) else json.dumps(s)[:80])
PYEOF
)
printf '%s\n' "$out" | sed 's/^/    /' >"$T/helper.out"
line() { grep "^    $1 " "$T/helper.out" | head -n 1 | sed "s/^    $1 //"; }
want=staged
[ "$BACKEND" = s3 ] && want=uploading # closed, safe in the cache, not yet in the bucket
check_eq "status of a staged file" $want "$(line status)"
check_eq "a schema commit: DataJoint's encoding of date, datetime, uuid, decimal, bool, float" \
	"_schema/lab/Recording/subject_id=1/session_date=2017-05-15/started=2024-01-15%2010%3A30%3A00/uid=0f2c6b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b/gain=1.50/ok=True/rate=2.5/raw_tok12345.bin" \
	"$(line path)"
check_eq "its object reads back" True "$(line read)"
check_eq "a hash commit" "_hash/lab/lvauakv4jmvhnolrtwiraf6fsi" "$(line hash)"
check_eq "a refused commit is OSError(EINVAL) with the mount's reason" "EINVAL True" "$(line error)"
check_eq "an async commit is queued" True "$(line queued)"
check_eq "and wait() gives its receipt" "True 5 True" "$(line waited)"
check_eq "insert(): the row, the receipt's DataJoint fields, under the SQL table name" \
	"['subject_id', 'trace'] True ['_schema', 'lab', 'recording'] stagefs" "$(line row)"
check_eq "table names as given or from a table class" "_recording recording" "$(line table)"
check "a key value with no DataJoint encoding is a TypeError" grep -qx "    typeerror" "$T/helper.out"
check_eq "publish, and snapshots lists it" "helper ['helper']" "$(line snap)"
grep -v "^    \(status\|path\|read\|hash\|error\|queued\|waited\|row\|table\|typeerror\|snap\)\( \|$\)" \
	"$T/helper.out" | head -n 20
unmount_fs

# make install puts it where Debian's python3 imports it
make -s -C "$REPO_ROOT" install DESTDIR="$T/root" PREFIX=/usr >/dev/null 2>&1 || fail "make install"
found=$(cd "$T/root" && find . -name stagefs.py | head -n 1)
check_eq "make install puts stagefs.py into Debian's python3 path" ./usr/lib/python3/dist-packages/stagefs.py "$found"
check_eq "from which it imports" ok "$(cd / && PYTHONPATH="$T/root/usr/lib/python3/dist-packages" $PY -c 'import stagefs; print("ok")')"
check "and the manual page, which groff renders without a warning" \
	sh -c "test -f '$T/root/usr/share/man/man1/stagefs.1' && ! groff -man -ww -z '$T/root/usr/share/man/man1/stagefs.1' 2>&1 | grep ."

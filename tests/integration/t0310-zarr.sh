#!/bin/bash
# zarr 2 DirectoryStore on staging: arrays in nested groups, overwrite, resize,
# consolidated metadata, ProcessSynchronizer (fcntl locks) with several writer
# processes; commit the directory and read the canonical copy with zarr.
. "$(dirname "$0")/lib.sh"

if ! $PY -c 'import zarr, numpy' 2>/dev/null; then
	echo "# $TEST_NAME: skipped (no zarr for $PY)"
	exit 77
fi

mount_fs || exit 1
D=$S/lab/Imaging
mkdir -p "$D"
Z=$D/movie.zarr

check "zarr: groups, arrays, overwrite, resize, consolidate" $PY - "$Z" <<'EOF'
import sys, zarr, numpy as np
p = sys.argv[1]
store = zarr.DirectoryStore(p)
root = zarr.group(store=store, overwrite=True)
g = root.create_group("acq/raw")
a = g.zeros("frames", shape=(40, 32, 32), chunks=(8, 16, 16), dtype="u2")
data = (np.arange(40 * 32 * 32) % 65521).astype("u2").reshape(40, 32, 32)
a[:] = data
a[5] = 9                                   # overwrite existing chunks
data[5] = 9
a.resize(48, 32, 32)                       # grow
a[40:] = 1
b = root.create_group("meta").array("ts", np.linspace(0, 1, 100), chunks=(30,))
b[:] = b[:] * 2                            # rewrite every chunk (rename over .partial-less files)
root.attrs["subject"] = "m1"
zarr.consolidate_metadata(store)
r = zarr.open_consolidated(p, mode="r")
x = r["acq/raw/frames"]
assert x.shape == (48, 32, 32)
assert np.array_equal(x[:40], data) and (x[40:] == 1).all()
assert np.allclose(r["meta/ts"][:], np.linspace(0, 1, 100) * 2)
assert r.attrs["subject"] == "m1"
a.resize(20, 32, 32)                       # shrink: chunks beyond are deleted
assert a.shape == (20, 32, 32)
import os
assert not os.path.exists(os.path.join(p, "acq/raw/frames/4.0.0")), "chunk not removed"
EOF

# several processes write different chunks of one array through a ProcessSynchronizer
check "zarr ProcessSynchronizer: 4 writer processes" $PY - "$Z" "$T/sync" <<'EOF'
import sys, zarr, numpy as np
from multiprocessing import Pool
p, syncdir = sys.argv[1], sys.argv[2]

def work(i):
    sync = zarr.ProcessSynchronizer(syncdir)
    a = zarr.open_array(p + "/shared", mode="r+", synchronizer=sync)
    for j in range(5):
        a[i * 10 + j * 2: i * 10 + j * 2 + 2] = i + 1     # chunks of 4: neighbours share chunks
    return i

zarr.open_array(p + "/shared", mode="w", shape=(40,), chunks=(4,), dtype="i4",
                fill_value=0)
with Pool(4) as pool:
    assert sorted(pool.map(work, range(4))) == [0, 1, 2, 3]
a = zarr.open_array(p + "/shared", mode="r")
want = np.repeat(np.arange(1, 5), 10)
assert np.array_equal(a[:], want), a[:]
EOF

# the synchronizer's lock files live on staging too: fcntl locks through the mount
check "zarr ProcessSynchronizer with its lock dir on the mount" $PY - "$Z" "$D/locks" <<'EOF'
import sys, zarr, numpy as np
from multiprocessing import Pool
p, syncdir = sys.argv[1], sys.argv[2]

def work(i):
    a = zarr.open_array(p + "/shared2", mode="r+", synchronizer=zarr.ProcessSynchronizer(syncdir))
    for k in range(5):       # disjoint elements of ONE chunk: the chunk's
        for rep in range(5): # read-modify-write must run under the chunk lock
            a[i * 5 + k] = (i + 1) * 10 + rep
    return i

zarr.open_array(p + "/shared2", mode="w", shape=(20,), chunks=(20,), dtype="i4", fill_value=0)
with Pool(4) as pool:
    pool.map(work, range(4))
a = zarr.open_array(p + "/shared2", mode="r")
assert np.array_equal(a[:], np.repeat(np.arange(1, 5) * 10 + 4, 5)), a[:]
EOF
rm -rf "$D/locks"

cp -a "$Z" "$T/ref.zarr"
want_sum=$($PY "$TESTS_DIR/dandi_checksum.py" "$T/ref.zarr")
check_eq "commit the zarr directory" OK "$(commit "$Z" '{"field":"movie","key":{"subject_id":1,"session":"s1"}}')"
R=$D/.receipts/movie.zarr.json
P=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["path"])' "$R")
case $P in _schema/lab/Imaging/subject_id=1/session=s1/movie_????????.zarr) ok "zarr canonical path $P" ;; *) fail "zarr canonical path" "$P" ;; esac
check_eq "receipt checksum" "$want_sum" "$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["checksum"])' "$R")"
check_eq "receipt item_count" "$(find "$T/ref.zarr" -type f | wc -l)" \
	"$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["item_count"])' "$R")"
check "canonical tree identical" diff -r "$T/ref.zarr" "$MNT/$P"
check "zarr reads the canonical copy" $PY - "$MNT/$P" <<'EOF'
import sys, zarr, numpy as np
r = zarr.open_consolidated(sys.argv[1], mode="r")
assert r["acq/raw/frames"].shape == (48, 32, 32)   # consolidated metadata: before the shrink
g = zarr.open_group(sys.argv[1], mode="r")
x = g["acq/raw/frames"]
assert x.shape == (20, 32, 32)
assert int(x[5, 0, 0]) == 9
assert np.array_equal(g["shared"][:], np.repeat(np.arange(1, 5), 10))
assert np.array_equal(g["shared2"][:], np.repeat(np.arange(1, 5) * 10 + 4, 5))
EOF
check "zarr cannot write the canonical copy" $PY - "$MNT/$P" <<'EOF'
import sys, zarr
try:
    zarr.open_group(sys.argv[1], mode="r+")["shared"][0] = 5
except (OSError, PermissionError):
    sys.exit(0)
sys.exit("wrote into a canonical zarr")
EOF

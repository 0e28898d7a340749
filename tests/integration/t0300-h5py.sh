#!/bin/bash
# h5py on staging: chunked + gzip datasets, r+ in place, resize, HDF5 file
# locking (flock), then commit and compare the canonical bytes.
. "$(dirname "$0")/lib.sh"

if ! $PY -c 'import h5py, numpy' 2>/dev/null; then
	echo "# $TEST_NAME: skipped (no h5py for $PY)"
	exit 77
fi

mount_fs || exit 1
D=$S/lab/Ephys
mkdir -p "$D"
F=$D/session1.h5

check "h5py: create chunked+gzip, reopen r+, modify, resize, read back" $PY - "$F" <<'EOF'
import sys, h5py, numpy as np
p = sys.argv[1]
rng = np.random.default_rng(1)
a = rng.standard_normal((300, 64)).astype("f4")
with h5py.File(p, "w") as f:
    d = f.create_dataset("traces", data=a, chunks=(50, 64), compression="gzip",
                         maxshape=(None, 64))
    d.attrs["rate"] = 30000
    g = f.create_group("meta/sub")
    g.create_dataset("ids", data=np.arange(1000))
with h5py.File(p, "r+") as f:
    d = f["traces"]
    d[10:20, :] = 7.0
    a[10:20, :] = 7.0
    d.resize((600, 64))
    d[300:600, :] = a[::-1]
    f["meta/sub/ids"][5] = -1
with h5py.File(p, "r") as f:
    d = f["traces"]
    assert d.shape == (600, 64), d.shape
    assert d.compression == "gzip" and d.chunks == (50, 64)
    assert np.array_equal(d[:300], a) and np.array_equal(d[300:], a[::-1])
    assert d.attrs["rate"] == 30000
    ids = f["meta/sub/ids"][:]
    assert ids[5] == -1 and ids[6] == 6
EOF

# HDF5 file locking (the default, HDF5_USE_FILE_LOCKING unset) uses flock: a second
# writer must be refused while the first holds the file open for writing
check "HDF5 file locking excludes a second writer" env -u HDF5_USE_FILE_LOCKING $PY - "$F" <<'EOF'
import subprocess, sys, h5py
p = sys.argv[1]
second = "import h5py, sys\ntry:\n    h5py.File(sys.argv[1], 'r+').close()\nexcept OSError:\n    sys.exit(3)\n"
f = h5py.File(p, "r+")
rc = subprocess.run([sys.executable, "-c", second, p]).returncode
f.close()
assert rc == 3, "second writer opened a locked HDF5 file (rc %d)" % rc
assert subprocess.run([sys.executable, "-c", second, p]).returncode == 0, "not openable after close"
with h5py.File(p, "r") as f:   # and after close it opens again
    assert f["traces"].shape == (600, 64)
EOF

# SWMR-style: one writer appends, a reader opens read-only meanwhile (with locking off, as SWMR users do)
check "reader sees appended data after writer flush" env HDF5_USE_FILE_LOCKING=FALSE $PY - "$D/append.h5" <<'EOF'
import sys, h5py, numpy as np
p = sys.argv[1]
with h5py.File(p, "w") as f:
    d = f.create_dataset("x", shape=(0,), maxshape=(None,), chunks=(1024,), dtype="i8")
    for i in range(10):
        d.resize((d.shape[0] + 1000,))
        d[-1000:] = np.arange(i * 1000, (i + 1) * 1000)
        f.flush()
with h5py.File(p, "r") as f:
    assert np.array_equal(f["x"][:], np.arange(10000))
EOF

cp "$F" "$T/ref.h5"
check_eq "commit the HDF5 file" OK "$(commit "$F" '{"field":"traces","key":{"subject_id":1,"session":1}}')"
P=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["path"])' "$D/.receipts/session1.h5.json")
check "canonical bytes identical" cmp "$T/ref.h5" "$MNT/$P"
check_eq "receipt md5" "$(md5 "$T/ref.h5")" \
	"$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["md5"])' "$D/.receipts/session1.h5.json")"
check "h5py reads the canonical copy (read-only mount path, locking on)" env -u HDF5_USE_FILE_LOCKING $PY - "$MNT/$P" <<'EOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f["traces"].shape == (600, 64)
    assert float(f["traces"][15, 3]) == 7.0
EOF
check "h5py cannot open the canonical copy for writing" $PY - "$MNT/$P" <<'EOF'
import sys, h5py
try:
    h5py.File(sys.argv[1], "r+")
except OSError:
    sys.exit(0)
sys.exit("opened a canonical file r+")
EOF
check "commit the appended file by hash" test "$(commit "$D/append.h5" hash)" = OK

# scripts/bench-s3.sh - the s3 workloads of scripts/bench (sourced by it: it uses its
# helpers, W, BIN, PY, PAIRS, CSV, RESULTS, MOUNTS).  Every one runs on one throwaway
# Ceph RGW 16.2 (scripts/rgw-server, on loopback, objects in memory), each run on a fresh
# mount of its own prefix of one bucket, the targets alternated A B A B ... (a warm-up
# round, then PAIRS rounds); the ratio is stagefs time over the other target's (in the
# `native` column), median of the rounds, with the spread.
#
#   s3-zarr   stagefs upload=async (write-back, the default) against upload=sync: a zarr
#             write of BENCH_S3_CHUNKS (1000) chunks of 4 KiB, and the time until every
#             chunk is in the bucket (the unmount, which uploads what is queued, returned)
#   s3-peers  stagefs (upload=async) against the peers on the same server, the parts in
#             BENCH_S3_PARTS (default "zarr s3fs dd tree"):
#     zarr    BENCH_S3_CHUNKS chunks: stagefs writes them into staging and commits the
#             array (durable when the commit returned: every chunk is at its canonical
#             key); `rclone mount --vfs-cache-mode writes` writes them (durable when a
#             listing of the bucket shows every chunk, polled every 0.1 s); and the write
#             against stagefs on the file backend (the floor for the s3 write)
#     s3fs    the same with BENCH_S3FS_CHUNKS (200) chunks against s3fs (durable when its
#             write ends: it uploads on close)
#     dd      dd of BENCH_S3_SIZE_MB (1024) MiB, bs=1M conv=fsync: stagefs until fsync
#             returned (its contract: the file is in the bucket) against rclone until the
#             object is listed with its full size
#     tree    BENCH_S3_TREE (10000) files of 4 KiB in 100 directories, already in the
#             bucket: stagefs commit of the tree (server-side copies and deletes, in
#             parallel) against `rclone move` of the same tree within the bucket (the
#             same copies and deletes; --transfers 4, its default)
#   Requests per chunk (zarr, s3fs) are counted from RGW's own access log.
# scripts/install-deps bench installs radosgw, rclone and s3fs.

S3CHUNKS=${BENCH_S3_CHUNKS:-1000}
S3FSCHUNKS=${BENCH_S3FS_CHUNKS:-200}
S3MB=${BENCH_S3_SIZE_MB:-1024}
S3TREE=${BENCH_S3_TREE:-10000}
S3PARTS=${BENCH_S3_PARTS:-zarr s3fs dd tree}
S3KEY=STAGEFSTESTKEY000001
S3SECRET=stagefstestsecret000000000000000000000001
RGW_PORT=

# rgw_up: start the server once for every s3 workload; the environment its clients need
rgw_up() {
	[ -n "$RGW_DIR" ] && return 0
	RGW_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	RGW_DIR=$W/rgw
	# room for the 1 GiB files (a deleted object's tail is freed by RGW's gc, ~30 s later)
	RGW_MEMSTORE_BYTES=${RGW_MEMSTORE_BYTES:-$(((S3MB * 6 + 2048) * 1048576))} \
		bash "$REPO/scripts/rgw-server" start "$RGW_DIR" "$RGW_PORT" bench >/dev/null ||
		die "cannot start Ceph RGW (scripts/rgw-server)"
	unset AWS_CA_BUNDLE
	export AWS_ACCESS_KEY_ID=$S3KEY AWS_SECRET_ACCESS_KEY=$S3SECRET
	export S3C_ENDPOINT=http://127.0.0.1:$RGW_PORT S3C_BUCKET=bench
	RGW_LOG=$RGW_DIR/log/client.rgw.log
	cat >"$W/rclone.conf" <<EOF
[rgw]
type = s3
provider = Ceph
env_auth = false
access_key_id = $S3KEY
secret_access_key = $S3SECRET
endpoint = http://127.0.0.1:$RGW_PORT
force_path_style = true
EOF
	echo "$S3KEY:$S3SECRET" >"$W/s3fs.passwd"
	chmod 600 "$W/s3fs.passwd"
}

# requests PREFIX: the requests RGW logged for keys below PREFIX (objects and listings),
# but those of the bench's own poller (user agent s3c.py)
requests() {
	sleep 0.2 # the log is written asynchronously
	grep -E "\"[A-Z]+ /bench(/$1/|/?\?[^ ]*prefix=$1(%2F|&| ))" "$RGW_LOG" | grep -vc '"s3c.py"' || true
}

# s3_wait PREFIX COUNT [SIZE [TIMEOUT]]: poll a listing until COUNT keys below PREFIX
# (of SIZE bytes unless SIZE is -; temporary *.partial names and directory markers never
# count) are in the
# bucket; prints the epoch time when they were.  Fails after TIMEOUT (900) seconds;
# TIMEOUT 0 lists once.
s3_wait() {
	$PY - "$REPO/tests/integration" "$@" <<'EOF'
import sys, time, xml.etree.ElementTree as ET
sys.path.insert(0, sys.argv[1])
import s3c
prefix, want = sys.argv[2], int(sys.argv[3])
size = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None
deadline = time.time() + (float(sys.argv[5]) if len(sys.argv) > 5 else 900)
while True:
    n, token = 0, None
    while True:
        q = {"list-type": "2", "prefix": prefix}
        if token:
            q["continuation-token"] = token
        st, data = s3c.request("GET", query=q)
        s3c.need(st, data, 200)
        root = ET.fromstring(data)
        for c in s3c.local(root, "Contents"):
            if not s3c.text(c, "Key").endswith((".partial", "/")) and \
                    (size is None or int(s3c.text(c, "Size")) == size):
                n += 1
        token = s3c.text(root, "NextContinuationToken")
        if s3c.text(root, "IsTruncated") != "true" or not token:
            break
    if n >= want:
        print(f"{time.time():.6f}")
        break
    if time.time() >= deadline:
        sys.exit(f"s3_wait: {n} of {want} keys below {prefix} in the bucket")
    time.sleep(0.1)
EOF
}
s3_count() { $PY "$REPO/tests/integration/s3c.py" list "$1" | grep -Evc '(\.partial|/)$' || true; }

# zarr_rows PATH N: a zarr array of N chunks of 4 KiB written one chunk at a time (as an
# acquisition loop does); prints the number of files it made
zarr_rows() {
	$PY - "$1" "$2" <<'EOF'
import os, sys, numpy as np, zarr
path, n = sys.argv[1], int(sys.argv[2])
z = zarr.open(path, mode="w", shape=(n, 1024), chunks=(1, 1024), dtype="f4")
for i in range(n):
    z[i] = np.full(1024, i, dtype="f4")
print(sum(len(f) for _, _, f in os.walk(path)))
EOF
}

# ---------------------------------------------------------------- mounts, one per run
# sfs_mount MNT TAG OPTS: stagefs on prefix TAG of the bucket, its own index and cache
sfs_mount() {
	mkdir -p "$1"
	"$BIN" -f -o "index=$W/$2.db,cache_dir=$W/$2.cache${3:+,$3}" \
		"s3://bench/$2?endpoint=http://127.0.0.1:$RGW_PORT&region=us-east-1&path_style=1" "$1" \
		2>>"$W/$2.log" &
	SFS_PID=$!
	wait_mounted "$1"
}
sfs_umount() { fusermount3 -u "$1" && wait "$SFS_PID" || die "stagefs on $1 did not exit cleanly (see $W/*.log)"; }
# peer_umount MNT PATTERN: unmount a daemonized peer and wait until its process is gone
peer_umount() {
	local i
	fusermount3 -u "$1" || die "cannot unmount $1"
	for i in $(seq 1 600); do
		pgrep -f -- "$2" >/dev/null || return 0
		sleep 0.1
	done
	die "the daemon of $1 did not exit within 60 s"
}
rc_mount() { # MNT TAG
	mkdir -p "$1"
	rclone mount "rgw:bench/$2" "$1" --config "$W/rclone.conf" --vfs-cache-mode writes \
		--cache-dir "$W/$2.rccache" --daemon --log-file "$W/$2.log"
	wait_mounted "$1"
}
s3fs_mount() { # MNT TAG
	mkdir -p "$1"
	$PY "$REPO/tests/integration/s3c.py" put "$2/" /dev/null
	s3fs "bench:/$2" "$1" -o "passwd_file=$W/s3fs.passwd,url=http://127.0.0.1:$RGW_PORT" \
		-o use_path_request_style,endpoint=us-east-1,logfile="$W/$2.log"
	wait_mounted "$1"
}

# ---------------------------------------------------------------- s3-zarr (async vs sync)
# s3zarr_run MODE TAG: sets RUN to "write_s in_bucket_s"
s3zarr_run() {
	local m=$W/m-$2 t0 t1 t2
	sfs_mount "$m" "$2" "upload=$1"
	mkdir -p "$m/$STG_REL"
	t0=$(now)
	zarr_rows "$m/$STG_REL/z.zarr" "$S3CHUNKS" >/dev/null
	t1=$(now)
	sfs_umount "$m"
	t2=$(now)
	RUN="$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t2")"
}
w_s3_zarr() {
	echo "bench: s3-zarr: $S3CHUNKS chunks of 4 KiB on Ceph RGW, upload=async against upload=sync"
	rgw_up
	local i a b sw=() aw=() sd=() ad=() rw=() rd=()
	for i in $(seq 0 "$PAIRS"); do
		MOUNTS+=("$W/m-zs$i" "$W/m-za$i")
		s3zarr_run sync "zs$i"
		a=$RUN
		s3zarr_run async "za$i"
		b=$RUN
		[ "$i" = 0 ] && continue
		sw+=("${a% *}") sd+=("${a#* }") aw+=("${b% *}") ad+=("${b#* }")
		rw+=("$(calc %.3f "${b% *} / ${a% *}")") rd+=("$(calc %.3f "${b#* } / ${a#* }")")
		echo "s3-zarr,async,$i,${a% *},${b% *},${rw[-1]}" >>"$CSV"
		echo "  s3-zarr pair $i: sync ${a% *}s (in the bucket ${a#* }s)," \
			"async ${b% *}s (in the bucket ${b#* }s)" >&2
	done
	RESULTS+=("$(summary s3-zarr async "the write (native column: upload=sync)" "${sw[*]}" "${aw[*]}" "${rw[*]}")")
	RESULTS+=("$(summary s3-zarr async "until all is in the bucket (native column: upload=sync)" "${sd[*]}" "${ad[*]}" "${rd[*]}")")
}

# ---------------------------------------------------------------- s3-peers
# each *_run TAG sets RUN to "write_s durable_s requests" (requests: 0 where not counted)
zarr_sfs_run() { # TAG N
	local m=$W/m-$1 t0 t1 t2 n
	sfs_mount "$m" "$1"
	mkdir -p "$m/$STG_REL"
	t0=$(now)
	n=$(zarr_rows "$m/$STG_REL/z.zarr" "$2")
	t1=$(now)
	"$BIN" commit "$m/$STG_REL/z.zarr" --field frames --key run="${1//-/}" >/dev/null ||
		die "stagefs commit of the zarr array failed"
	t2=$(now)
	[ "$(s3_count "$1/_schema/")" -eq "$n" ] || die "$1: the bucket does not hold the $n committed files"
	sfs_umount "$m"
	RUN="$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t2") $(requests "$1")"
}
zarr_file_run() { # TAG N: stagefs on the file backend, the write only
	local m=$W/m-$1 t0 t1
	mkdir -p "$m" "$W/$1.store"
	"$BIN" -f -o "index=$W/$1.db,cache_dir=$W/$1.cache" "$W/$1.store" "$m" 2>>"$W/$1.log" &
	SFS_PID=$!
	wait_mounted "$m"
	mkdir -p "$m/$STG_REL"
	t0=$(now)
	zarr_rows "$m/$STG_REL/z.zarr" "$2" >/dev/null
	t1=$(now)
	sfs_umount "$m"
	rm -rf "$W/$1.store"
	RUN="$(elapsed "$t0" "$t1") 0 0"
}
zarr_rc_run() { # TAG N
	local m=$W/m-$1 t0 t1 t2 n
	rc_mount "$m" "$1"
	t0=$(now)
	n=$(zarr_rows "$m/z.zarr" "$2")
	t1=$(now)
	t2=$(s3_wait "$1/z.zarr/" "$n")
	peer_umount "$m" "rclone mount rgw:bench/$1 "
	RUN="$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t2") $(requests "$1")"
}
zarr_s3fs_run() { # TAG N
	local m=$W/m-$1 t0 t1 n
	s3fs_mount "$m" "$1"
	t0=$(now)
	n=$(zarr_rows "$m/z.zarr" "$2")
	t1=$(now)
	peer_umount "$m" "s3fs bench:/$1 "
	[ "$(s3_count "$1/z.zarr/")" -eq "$n" ] || die "$1: s3fs left fewer than $n files in the bucket"
	RUN="$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t1") $(requests "$1")"
}
dd_sfs_run() { # TAG
	local m=$W/m-$1 t0 t1
	sfs_mount "$m" "$1"
	mkdir -p "$m/$STG_REL"
	sync
	t0=$(now)
	dd if=/dev/zero of="$m/$STG_REL/big.bin" bs=1M count="$S3MB" conv=fsync status=none
	t1=$(now)
	s3_wait "$1/" 1 $((S3MB * 1048576)) 0 >/dev/null || die "$1: the file is not in the bucket after fsync"
	rm "$m/$STG_REL/big.bin"
	sfs_umount "$m"
	RUN="$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t1") 0"
}
dd_rc_run() { # TAG
	local m=$W/m-$1 t0 t1 t2
	rc_mount "$m" "$1"
	sync
	t0=$(now)
	dd if=/dev/zero of="$m/big.bin" bs=1M count="$S3MB" conv=fsync status=none
	t1=$(now)
	t2=$(s3_wait "$1/" 1 $((S3MB * 1048576)))
	rm "$m/big.bin"
	peer_umount "$m" "rclone mount rgw:bench/$1 "
	RUN="$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t2") 0"
}
# tree_make DIR: S3TREE files of 4 KiB in 100 directories
tree_make() {
	$PY - "$1" "$S3TREE" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, "d%02d" % (i % 100))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d.bin" % i), "wb") as f:
        f.write(b"%07d" % i * 585 + b"\n")
EOF
}
tree_sfs_run() { # TAG: written and uploaded (unmount flushes), then timed: the commit
	local m=$W/m-$1 t0 t1
	sfs_mount "$m" "$1"
	mkdir -p "$m/$STG_REL"
	tree_make "$m/$STG_REL/tree"
	sfs_umount "$m"
	[ "$(s3_count "$1/_staging/")" -eq "$S3TREE" ] || die "$1: the staged tree is not in the bucket"
	sfs_mount "$m" "$1"
	t0=$(now)
	"$BIN" commit "$m/$STG_REL/tree" --field files --key run="${1//-/}" >/dev/null ||
		die "stagefs commit of the tree failed"
	t1=$(now)
	[ "$(s3_count "$1/_schema/")" -eq "$S3TREE" ] || die "$1: the committed tree is not in the bucket"
	sfs_umount "$m"
	RUN="$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t1") 0"
}
tree_rc_run() { # TAG: uploaded with rclone copy, then timed: rclone move within the bucket
	local t0 t1
	rm -rf "$W/tree-src"
	tree_make "$W/tree-src"
	rclone copy "$W/tree-src" "rgw:bench/$1/tree" --config "$W/rclone.conf" --transfers 8
	[ "$(s3_count "$1/tree/")" -eq "$S3TREE" ] || die "$1: rclone copy did not upload the tree"
	t0=$(now)
	rclone move "rgw:bench/$1/tree" "rgw:bench/$1/moved" --config "$W/rclone.conf"
	t1=$(now)
	[ "$(s3_count "$1/moved/")" -eq "$S3TREE" ] || die "$1: rclone move did not move the tree"
	RUN="$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t1") 0"
}

# peers_pair NAME N A B: A (the peer, native column) and B (stagefs) alternated; the
# per-round times of both into the named arrays PW_A PD_A PW_B PD_B PQ_A PQ_B
peers_pair() {
	local name=$1 a=$2 b=$3 n=${4:-} i ra rb w d q
	PW_A=() PD_A=() PW_B=() PD_B=() PQ_A=() PQ_B=()
	for i in $(seq 0 "$PAIRS"); do
		MOUNTS+=("$W/m-$name-a$i" "$W/m-$name-b$i")
		$a "$name-a$i" $n
		ra=$RUN
		$b "$name-b$i" $n
		rb=$RUN
		echo "  $name round $i: $a ${ra// /s,}, $b ${rb// /s,} (write, durable, requests)" >&2
		[ "$i" = 0 ] && continue
		read -r w d q <<<"$ra"
		PW_A+=("$w") PD_A+=("$d") PQ_A+=("$q")
		read -r w d q <<<"$rb"
		PW_B+=("$w") PD_B+=("$d") PQ_B+=("$q")
		echo "$name,$b,$i,${PD_A[-1]},${PD_B[-1]},$(calc %.3f "${PD_B[-1]} / ${PD_A[-1]}")" >>"$CSV"
	done
}
ratios() { # "A..." "B...": per-round B/A
	$PY -c 'import sys; a, b = (v.split() for v in sys.argv[1:3]); print(" ".join("%.3f" % (float(y) / float(x)) for x, y in zip(a, b)))' "$1" "$2"
}
per() { # "REQUESTS..." N: median requests per item
	$PY -c 'import statistics, sys; print("%.2f" % (statistics.median(float(x) for x in sys.argv[1].split()) / int(sys.argv[2])))' "$1" "$2"
}

w_s3_peers() {
	echo "bench: s3-peers on Ceph RGW: $S3PARTS"
	rgw_up
	local part
	for part in $S3PARTS; do
		case $part in
		zarr)
			command -v rclone >/dev/null || die "rclone not installed (scripts/install-deps bench)"
			echo "bench: s3-peers zarr: $S3CHUNKS chunks, stagefs write + commit against rclone and stagefs on the file backend"
			peers_pair zr zarr_rc_run zarr_sfs_run "$S3CHUNKS"
			RESULTS+=("$(summary s3-zarr stagefs "the write (native column: rclone mount, vfs-cache-mode writes)" "${PW_A[*]}" "${PW_B[*]}" "$(ratios "${PW_A[*]}" "${PW_B[*]}")")")
			RESULTS+=("$(summary s3-zarr stagefs "until durable: stagefs committed, rclone all listed (native column: rclone)" "${PD_A[*]}" "${PD_B[*]}" "$(ratios "${PD_A[*]}" "${PD_B[*]}")")")
			RESULTS+=("$(printf '%-10s %-8s %9s %9s  %s' s3-zarr stagefs "$(per "${PQ_A[*]}" "$S3CHUNKS")" "$(per "${PQ_B[*]}" "$S3CHUNKS")" "requests per chunk, write + commit (native column: rclone, write)")")
			peers_pair zf zarr_file_run zarr_sfs_run "$S3CHUNKS"
			RESULTS+=("$(summary s3-zarr stagefs "the write (native column: stagefs on the file backend)" "${PW_A[*]}" "${PW_B[*]}" "$(ratios "${PW_A[*]}" "${PW_B[*]}")")")
			;;
		s3fs)
			command -v s3fs >/dev/null || die "s3fs not installed (scripts/install-deps bench)"
			echo "bench: s3-peers s3fs: $S3FSCHUNKS chunks, stagefs write + commit against s3fs"
			peers_pair zs zarr_s3fs_run zarr_sfs_run "$S3FSCHUNKS"
			RESULTS+=("$(summary s3-zarr stagefs "$S3FSCHUNKS chunks until durable (native column: s3fs)" "${PD_A[*]}" "${PD_B[*]}" "$(ratios "${PD_A[*]}" "${PD_B[*]}")")")
			RESULTS+=("$(printf '%-10s %-8s %9s %9s  %s' s3-zarr stagefs "$(per "${PQ_A[*]}" "$S3FSCHUNKS")" "$(per "${PQ_B[*]}" "$S3FSCHUNKS")" "requests per chunk (native column: s3fs)")")
			;;
		dd)
			echo "bench: s3-peers dd: $S3MB MiB conv=fsync, stagefs against rclone until in the bucket"
			peers_pair dd dd_rc_run dd_sfs_run
			RESULTS+=("$(summary s3-dd stagefs "$S3MB MiB until durable: stagefs fsync returned, rclone listed (native column: rclone; its dd took $(median ${PW_A[*]}) s)" "${PD_A[*]}" "${PD_B[*]}" "$(ratios "${PD_A[*]}" "${PD_B[*]}")")")
			;;
		tree)
			echo "bench: s3-peers tree: commit of $S3TREE files already in the bucket against rclone move"
			peers_pair tr tree_rc_run tree_sfs_run
			RESULTS+=("$(summary s3-tree stagefs "commit of $S3TREE files in the bucket (native column: rclone move)" "${PD_A[*]}" "${PD_B[*]}" "$(ratios "${PD_A[*]}" "${PD_B[*]}")")")
			;;
		*) die "unknown s3-peers part '$part' (zarr s3fs dd tree)" ;;
		esac
	done
}

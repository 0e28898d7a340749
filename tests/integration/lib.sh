# tests/integration/lib.sh - sourced by every tests/integration/tNNNN-*.sh.
#
# Gives each test a temp dir ($T) with a store ($STORE), an index ($INDEX) and
# a mountpoint ($MNT; $S = $MNT/staging), and:
#   mount_fs [-o opts...]   start `stagefs -f` in the background, wait (10 s
#                           deadline) until the mount shows in /proc/mounts
#   unmount_fs              fusermount3 -u (retries, then -uz), reap the daemon,
#                           check it exited 0 (a failed check otherwise)
#   remount [-o opts...]    unmount_fs + mount_fs on the same store and index
#   mount_second [-o ...]   a second daemon on the same store, as another host
#                           would run it: its own index, cache and mountpoint
#                           ($MNT2, $S2 = $MNT2/staging); unmount_second
#   kill_daemon             SIGKILL the daemon + fusermount3 -uz (crash tests)
#   bg_start CMD...         run a helper in the background; killed (by pid) at exit
#   at_exit CMD             run CMD (eval'd) at exit, after the unmount (e.g. umount a tmpfs)
#   ok DESC / fail DESC [DETAIL] / skip DESC
#   check DESC CMD...       ok when CMD exits 0
#   check_eq DESC WANT GOT
#   expect_errno CMD... ERRNO   run one syscall via sysc.py, compare the errno name
#                           (ERRNO "OK" = must succeed)
#   sysc OP ARGS...         print OK or the errno name of one syscall
#   commit PATH VALUE       setxattr user.stagefs.commit, prints OK or errno name
#   xget PATH NAME          print an xattr value (empty + status 1 when missing)
#   md5 FILE                print the md5 hex of FILE
#   uploaded PATH...        wait until no PATH waits for its upload (s3 write-back)
#   zarr_rows PATH          write a zarr array of 20 one-row chunks (as zarr does: each a
#                           temporary name, renamed); prints how many files it made (21)
#   zarr_rows_sum PATH      the sum of that array's first column (190.0)
# A trap on EXIT/INT/TERM kills helpers, unmounts, reaps the daemon, removes
# $T and prints "# <name>: N passed, N failed[, N skipped]".  The test exits 1
# on any failure, 77 when it cannot run here (no /dev/fuse).
# Environment: STAGEFS (binary, default <repo>/stagefs), STAGEFS_TEST_VERBOSE=1,
# STAGEFS_BACKEND=file (default) | s3.  With s3 every test starts its own s3rver
# (scripts/s3-server) on a free loopback port and mounts s3://bucket/prefix;
# $STORE is then the server's directory of that prefix, where an object KEY's
# bytes are in "$(sobj KEY)" and `skeys DIR` lists the object keys below DIR.
# STAGEFS_S3_SERVER=rgw (with s3): the server is Ceph RGW (scripts/rgw-server),
# which verifies every signature; it keeps objects in memory, so $STORE is empty
# and sobj/skeys ask the server (tests/integration/s3c.py).

set -u

TEST_NAME=$(basename "$0" .sh)
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTS_DIR/../.." && pwd)
PY=/usr/bin/python3
SYSC="$PY $TESTS_DIR/sysc.py"
STAGEFS=${STAGEFS:-$REPO_ROOT/stagefs}
case $STAGEFS in /*) ;; *) STAGEFS=$(pwd)/$STAGEFS ;; esac

PASSED=0
FAILED=0
SKIPPED=0
DAEMON_PID=
BG_PIDS=
T=
_DONE=0

_say() { printf '%s\n' "$*"; }
# _label: the backend in the result line (file, s3 = s3rver, rgw = Ceph RGW)
_label() { if [ "${S3_SERVER:-}" = rgw ]; then echo rgw; else echo "${BACKEND:-file}"; fi; }

ok() {
	PASSED=$((PASSED + 1))
	[ "${STAGEFS_TEST_VERBOSE:-0}" = 1 ] && _say "ok - $1"
	return 0
}

fail() {
	FAILED=$((FAILED + 1))
	_say "not ok - $1${2:+: $2}"
	return 1
}

skip() {
	SKIPPED=$((SKIPPED + 1))
	_say "skip - $1"
}

check() {
	local desc=$1
	shift
	local out
	if out=$("$@" 2>&1); then
		ok "$desc"
	else
		fail "$desc" "'$*' failed: $(printf '%s' "$out" | tail -n 3)"
	fi
}

check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		fail "$1" "want '$2', got '$3'"
	fi
}

sysc() { $SYSC "$@" 2>&1; }

# expect_errno OP ARGS... ERRNO
expect_errno() {
	local want=${!#}
	local args=("${@:1:$#-1}")
	local got
	got=$($SYSC "${args[@]}" 2>&1 | tail -n 1)
	if [ "$got" = "$want" ]; then
		ok "${args[*]#$T/} -> $want"
	else
		fail "${args[*]} -> $want" "got '$got'"
	fi
}

commit() { $SYSC setxattr "$1" user.stagefs.commit "$2" 2>&1; }

# write_mib PATH N: create PATH and write N MiB in one open (then fsync); print "no error"
# or the errno name of the first failure
write_mib() {
	$PY - "$1" "$2" <<'PYEOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
try:
    for _ in range(int(sys.argv[2])):
        os.write(fd, b"x" * (1 << 20))
    os.fsync(fd)
    print("no error")
except OSError as e:
    print(errno.errorcode[e.errno])
finally:
    try:
        os.close(fd)
    except OSError:
        pass
PYEOF
}

# json_get KEY < FILE: one member of a JSON object (strings raw, others as JSON)
# uploaded PATH...: wait (15 s at most) until no staged file PATH is still waiting
# for its upload (s3 write-back, upload=async); at once elsewhere
uploaded() {
	local p end=$((SECONDS + 15))
	for p in "$@"; do
		while [ "$(xget "$p" user.stagefs.status)" = uploading ] && [ $SECONDS -lt $end ]; do
			sleep 0.1
		done
	done
	return 0
}
zarr_rows() {
	$PY - "$1" <<'PYEOF'
import sys, numpy as np, zarr
z = zarr.open(sys.argv[1], mode="w", shape=(20, 256), chunks=(1, 256), dtype="f4")
for i in range(20):
    z[i] = np.full(256, i, dtype="f4")
print(len(list(z.store.keys())))
PYEOF
}
zarr_rows_sum() {
	$PY -c 'import sys, zarr; print(float(zarr.open(sys.argv[1], mode="r")[:, 0].sum()))' "$1"
}
json_get() { $PY -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(v if isinstance(v,str) else json.dumps(v))' "$1"; }

xget() {
	$PY - "$1" "$2" <<'PYEOF'
import os, sys
try:
    sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())
except OSError:
    sys.exit(1)
PYEOF
}

md5() { md5sum <"$1" | cut -d' ' -f1; }

# _mounted DIR: is DIR a mountpoint?  (/proc/mounts escapes spaces etc.; our paths have none)
_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
is_mounted() { _mounted "$MNT"; }

# _await_mount PID DIR LOG: wait (10 s deadline) until the daemon PID has
# mounted DIR.  Otherwise fail (naming the reason, from its LOG), make sure it
# is gone and nothing stays mounted, and return 1.
_await_mount() {
	local pid=$1 dir=$2 log=$3 deadline=$((SECONDS + 10)) rc
	while ! _mounted "$dir"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rc=0
			wait "$pid" || rc=$?
			fail "mount: daemon exited $rc before mounting" "$(tail -n 5 "$log")"
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			fail "mount: not mounted after 10 s"
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			fusermount3 -uz "$dir" 2>/dev/null
			return 1
		fi
		sleep 0.05
	done
	return 0
}

# mount_fs [extra stagefs args, e.g. -o token_length=4]
mount_fs() {
	if [ -n "$DAEMON_PID" ]; then
		fail "mount_fs: daemon already running"
		return 1
	fi
	"$STAGEFS" -f -o "index=$INDEX${BACKEND_OPTS:+,$BACKEND_OPTS}" "$@" "$SOURCE" "$MNT" \
		>>"$T/daemon.log" 2>&1 &
	DAEMON_PID=$!
	_await_mount "$DAEMON_PID" "$MNT" "$T/daemon.log" || {
		DAEMON_PID=
		return 1
	}
}

# await_jobs [INDEX]: wait (15 s at most) until the index has no commit job
# queued or running (a remount resumes the jobs a killed daemon left)
await_jobs() {
	$PY - "${1:-$INDEX}" <<'PYEOF'
import sqlite3, sys, time
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
for _ in range(300):
    n = db.execute("SELECT count(*) FROM jobs WHERE status IN ('pending','reserved')").fetchone()[0]
    if n == 0:
        sys.exit(0)
    time.sleep(0.05)
print("await_jobs: %d job(s) still queued or running after 15 s" % n, file=sys.stderr)
sys.exit(1)
PYEOF
}

# Reap the daemon within a deadline; SIGKILL it when it hangs.  Sets REAP_RC.
_reap_daemon() {
	local pid=$1 deadline=$((SECONDS + 15)) rc=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			REAP_RC="hung (killed after 15 s)"
			return
		fi
		# a zombie still answers kill -0: wait reaps it once it exited
		if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
			break
		fi
		sleep 0.05
	done
	wait "$pid" || rc=$?
	REAP_RC=$rc
}

# _unmount PID DIR LOG WHAT: fusermount3 -u DIR (retries, then -uz), reap the
# daemon PID and check that WHAT ("daemon") exited 0 (else fail with its LOG).
_unmount() {
	local pid=$1 dir=$2 log=$3 what=$4 i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		fusermount3 -u "$dir" 2>/dev/null && break
		_mounted "$dir" || break
		sleep 0.2
	done
	if _mounted "$dir"; then
		fail "unmount: fusermount3 -u kept failing (busy?); lazy unmount"
		fusermount3 -uz "$dir" 2>/dev/null
	fi
	_reap_daemon "$pid"
	if [ "$REAP_RC" = 0 ]; then
		ok "$what exited 0 at unmount"
	else
		fail "$what exit status at unmount" "$REAP_RC; log: $(tail -n 20 "$log")"
		return 1
	fi
}

unmount_fs() {
	if [ -z "$DAEMON_PID" ]; then
		is_mounted && fusermount3 -uz "$MNT" 2>/dev/null
		return 0
	fi
	local pid=$DAEMON_PID
	DAEMON_PID=
	_unmount "$pid" "$MNT" "$T/daemon.log" daemon
}

remount() {
	unmount_fs
	mount_fs "$@"
}

DAEMON2_PID=
MNT2=
mount_second() {
	MNT2=$T/mnt2
	S2=$MNT2/staging
	mkdir -p "$MNT2"
	local opts="index=$T/index2.db"
	opts="$opts,cache_dir=$T/cache2"
	"$STAGEFS" -f -o "$opts" "$@" "$SOURCE" "$MNT2" >>"$T/daemon2.log" 2>&1 &
	DAEMON2_PID=$!
	_await_mount "$DAEMON2_PID" "$MNT2" "$T/daemon2.log" || {
		DAEMON2_PID=
		return 1
	}
}

unmount_second() {
	[ -n "$DAEMON2_PID" ] || return 0
	local pid=$DAEMON2_PID
	DAEMON2_PID=
	_unmount "$pid" "$MNT2" "$T/daemon2.log" "second daemon"
}

kill_daemon() {
	if [ -n "$DAEMON_PID" ]; then
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
		DAEMON_PID=
	fi
	fusermount3 -uz "$MNT" 2>/dev/null
	local deadline=$((SECONDS + 5))
	while is_mounted && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
	return 0
}

AT_EXIT=
at_exit() { AT_EXIT="$AT_EXIT
$1"; }

# bg_start CMD...: a background helper, killed at exit; its pid in $BG_PID
bg_start() {
	"$@" &
	BG_PID=$!
	BG_PIDS="$BG_PIDS $BG_PID"
}

_cleanup() {
	local status=$?
	[ "$_DONE" = 1 ] && return
	_DONE=1
	trap '' INT TERM
	cd / || true
	local p bad
	if [ -n "$VERIFY_PORT" ]; then # before the proxy is stopped with the other helpers
		bad=$(PROXY_PORT=$VERIFY_PORT pstat sig_fail 2>&1)
		if [ "$bad" != 0 ]; then
			fail "the verifying proxy refused signatures: $bad" "$(head -n 5 "$T/proxy.err")"
		fi
	fi
	for p in $BG_PIDS; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -n "$T" ]; then
		unmount_second
		unmount_fs
		is_mounted && fusermount3 -uz "$MNT" 2>/dev/null
		if [ "$FAILED" -gt 0 ] && [ -s "$T/daemon.log" ]; then
			if grep -q "ERROR: AddressSanitizer\|runtime error:" "$T/daemon.log"; then
				_say "--- sanitizer report ---"
				grep -A 40 "ERROR: AddressSanitizer\|runtime error:" "$T/daemon.log" | head -n 80
			fi
			_say "--- daemon log (last 30 lines) ---"
			tail -n 30 "$T/daemon.log"
		fi
		if [ "$FAILED" -gt 0 ] && [ -s "$T/daemon2.log" ]; then
			_say "--- second daemon log (last 30 lines) ---"
			tail -n 30 "$T/daemon2.log"
		fi
		[ -n "$AT_EXIT" ] && eval "$AT_EXIT"
		[ -n "$S3_DIR" ] && bash "$REPO_ROOT/scripts/$S3_SERVER-server" stop "$S3_DIR" >/dev/null 2>&1
		[ -n "$MNT2" ] && fusermount3 -uz "$MNT2" 2>/dev/null
		[ -n "${STAGEFS_TEST_KEEP:-}" ] && cp "$T/daemon.log" "$STAGEFS_TEST_KEEP" 2>/dev/null
		# STAGEFS_TEST_KEEP_FAILED=DIR: a failed test's whole directory (logs, store) moves there
		if [ "$FAILED" -gt 0 ] && [ -n "${STAGEFS_TEST_KEEP_FAILED:-}" ] && ! is_mounted; then
			mkdir -p "$STAGEFS_TEST_KEEP_FAILED" && mv "$T" "$STAGEFS_TEST_KEEP_FAILED/" 2>/dev/null
		fi
		is_mounted || rm -rf "$T"
	fi
	if [ "$status" -ne 0 ] && [ "$status" -ne 77 ] && [ "$FAILED" -eq 0 ]; then
		fail "test script exited $status"
	fi
	if [ "$status" = 77 ] && [ "$FAILED" -eq 0 ] && [ "$PASSED" -eq 0 ]; then
		exit 77
	fi
	if [ "$SKIPPED" -gt 0 ]; then
		_say "# $TEST_NAME [$(_label)]: $PASSED passed, $FAILED failed, $SKIPPED skipped"
	else
		_say "# $TEST_NAME [$(_label)]: $PASSED passed, $FAILED failed"
	fi
	[ "$FAILED" -eq 0 ] && exit 0
	exit 1
}

if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null 2>&1; then
	_say "# $TEST_NAME: skipped (no /dev/fuse or fusermount3)"
	exit 77
fi
if [ ! -x "$STAGEFS" ]; then
	_say "# $TEST_NAME: 0 passed, 1 failed"
	_say "not ok - no stagefs binary at $STAGEFS (run make)"
	exit 1
fi

trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# _free_port: a TCP port free on loopback right now
_free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

T=$(mktemp -d "${TMPDIR:-/tmp}/stagefs-$TEST_NAME.XXXXXX")
BACKEND=${STAGEFS_BACKEND:-file}
S3_SERVER=${STAGEFS_S3_SERVER:-s3}
MNT=$T/mnt
INDEX=$T/index.db
S=$MNT/staging
S3_DIR=
case $BACKEND in
file)
	S3_SERVER=
	STORE=$T/store
	SOURCE=$STORE
	BACKEND_OPTS="cache_dir=$T/cache" # snapshot manifests are cached there
	mkdir -p "$STORE"
	;;
s3)
	unset AWS_CA_BUNDLE
	unset AWS_SESSION_TOKEN AWS_PROFILE
	S3_PORT=$(_free_port)
	S3_DIR=$T/s3
	case $S3_SERVER in
	s3)
		export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
		STORE=$S3_DIR/data/stagefs-test/p
		;;
	rgw)
		export AWS_ACCESS_KEY_ID=STAGEFSTESTKEY000001
		export AWS_SECRET_ACCESS_KEY=stagefstestsecret000000000000000000000001
		export RGW_ACCESS_KEY=$AWS_ACCESS_KEY_ID RGW_SECRET_KEY=$AWS_SECRET_ACCESS_KEY
		export S3C_ENDPOINT=http://127.0.0.1:$S3_PORT S3C_BUCKET=stagefs-test
		STORE=
		;;
	*)
		_say "not ok - unknown STAGEFS_S3_SERVER '$S3_SERVER' (s3rver: s3, Ceph: rgw)"
		exit 1
		;;
	esac
	if ! bash "$REPO_ROOT/scripts/$S3_SERVER-server" start "$S3_DIR" "$S3_PORT" stagefs-test \
		>"$T/s3-start.log" 2>&1; then
		S3_DIR=
		_say "not ok - cannot start the s3 test server: $(tail -n 3 "$T/s3-start.log")"
		FAILED=1
		exit 1
	fi
	SOURCE="s3://stagefs-test/p?endpoint=http://127.0.0.1:$S3_PORT&region=us-east-1&path_style=1"
	BACKEND_OPTS="cache_dir=$T/cache"
	;;
*)
	_say "not ok - unknown STAGEFS_BACKEND '$BACKEND'"
	exit 1
	;;
esac
mkdir -p "$MNT"

# proxy_start [s3proxy.py args...]: put tests/integration/s3proxy.py (SigV4
# verification, If-None-Match, UploadPartCopy, injected faults) between the
# mount and s3rver; SOURCE then points at it.  Its log is $T/proxy.log.
proxy_start() {
	PROXY_PORT=$(_free_port)
	rm -f "$T/proxy.ready"
	bg_start $PY "$TESTS_DIR/s3proxy.py" --listen "$PROXY_PORT" --upstream "$S3_PORT" \
		--log "$T/proxy.log" --ready-file "$T/proxy.ready" "$@" 2>>"$T/proxy.err"
	PROXY_PID=$BG_PID
	local deadline=$((SECONDS + 10))
	while [ ! -e "$T/proxy.ready" ]; do
		if [ $SECONDS -ge $deadline ] || ! kill -0 "$PROXY_PID" 2>/dev/null; then
			fail "proxy did not start" "$(tail -n 3 "$T/proxy.err")"
			return 1
		fi
		sleep 0.05
	done
	SOURCE="s3://stagefs-test/p?endpoint=http://127.0.0.1:$PROXY_PORT&region=us-east-1&path_style=1"
}
# proxy_stop: stop the proxy (SOURCE keeps pointing at it)
proxy_stop() {
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	return 0
}
# pstat NAME: one counter of the proxy (0 when never counted)
pstat() {
	curl -s --max-time 5 "http://127.0.0.1:$PROXY_PORT/__proxy/stats" |
		$PY -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}
# prules JSON: replace the proxy's fault rules (see s3proxy.py)
prules() {
	curl -s --max-time 5 -o /dev/null -X POST --data-binary "$1" \
		"http://127.0.0.1:$PROXY_PORT/__proxy/rules"
}

# sobj KEY: the local file holding the bytes of object KEY
sobj() {
	if [ "$S3_SERVER" = rgw ]; then # a fresh copy, or a path that does not exist
		local f=$T/objects/$1
		rm -f "$f"
		$PY "$TESTS_DIR/s3c.py" get "p/$1" "$f"
		printf '%s\n' "$f"
	elif [ "$BACKEND" = s3 ]; then
		printf '%s\n' "$STORE/$1._S3rver_object"
	else
		printf '%s\n' "$STORE/$1"
	fi
}
# skeys DIR: the object keys below DIR (relative to the store), one per line, sorted
skeys() {
	if [ "$S3_SERVER" = rgw ]; then
		$PY "$TESTS_DIR/s3c.py" list "p/$1/" | sed 's|^p/||'
		return 0
	fi
	[ -d "$STORE/$1" ] || return 0
	if [ "$BACKEND" = s3 ]; then
		(cd "$STORE" && find "$1" -type f -name '*._S3rver_object' | sed 's/\._S3rver_object$//' | sort)
	else
		(cd "$STORE" && find "$1" -type f | sort)
	fi
}

# STAGEFS_S3_VERIFY=1 (tests/run-all sets it for the s3 runs): every s3 test
# talks to s3rver through s3proxy.py, which refuses a wrong SigV4 signature;
# the test fails at exit if any signature was refused.
VERIFY_PORT=
# (RGW verifies signatures itself: no proxy in front of it)
if [ "$BACKEND" = s3 ] && [ "$S3_SERVER" = s3 ] && [ "${STAGEFS_S3_VERIFY:-0}" = 1 ]; then
	proxy_start || exit 1
	VERIFY_PORT=$PROXY_PORT
fi

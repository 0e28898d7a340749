#!/bin/bash
# Commit errors (SPEC §4): EBUSY, EINVAL, ENAMETOOLONG, EISDIR; after every error
# the staged entry is untouched and user.stagefs.status starts with "error: ".
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1
D=$S/lab/Sess
mkdir -p "$D"
GOOD='{"field":"raw","key":{"subject_id":1}}'

# tree_sum PATH: md5 of the names, types and bytes under PATH (a file or a directory)
tree_sum() {
	(cd "$1" 2>/dev/null && find . -printf '%P %y %s\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r cat) |
		md5sum | cut -d' ' -f1
	[ -f "$1" ] && md5 "$1"
}

# expect_commit_error ENTRY VALUE ERRNO: the commit fails with ERRNO and leaves ENTRY as it was
expect_commit_error() {
	local entry=$1 value=$2 want=$3 before after got st
	before=$(tree_sum "$entry")
	got=$(commit "$entry" "$value")
	after=$(tree_sum "$entry")
	check_eq "commit ${entry#$S/} $value -> $want" "$want" "$got"
	check_eq "  entry untouched after $want" "$before" "$after"
	st=$(xget "$entry" user.stagefs.status)
	case $st in
	"error: "?*) ok "  status is 'error: ...' after $want" ;;
	*) fail "  status after $want" "'$st'" ;;
	esac
}

printf 'some data' >"$D/f.h5"

# EINVAL: bad VALUE, key, field
expect_commit_error "$D/f.h5" '{' EINVAL
expect_commit_error "$D/f.h5" '' EINVAL
expect_commit_error "$D/f.h5" 'hashish' EINVAL
expect_commit_error "$D/f.h5" '[1,2]' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw"}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":{}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":[1]}' EINVAL
expect_commit_error "$D/f.h5" '{"key":{"a":1}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"Raw","key":{"a":1}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"1raw","key":{"a":1}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw-x","key":{"a":1}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"","key":{"a":1}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":{"a":1},"bogus":1}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":{"a":null}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":{"a":[1]}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":{"a":{"b":1}}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":{"a":"x\u0000y"}}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":{"a":1},"ext":5}' EINVAL
expect_commit_error "$D/f.h5" '{"field":"raw","key":{"a":1},"token":"a/b/c/d"}' EINVAL
expect_commit_error "$D/f.h5" '{"addressing":"hash","field":"raw"}' EINVAL
expect_commit_error "$D/f.h5" '{"addressing":"bogus"}' EINVAL
check_eq "no canonical object after all that" "" "$(skeys _hash; skeys _schema)"

# ENAMETOOLONG: a path segment over 255 bytes (field or key name)
long=$(printf 'f%.0s' $(seq 250))
expect_commit_error "$D/f.h5" "{\"field\":\"$long\",\"key\":{\"a\":1}}" ENAMETOOLONG
expect_commit_error "$D/f.h5" "{\"field\":\"raw\",\"key\":{\"k$long$long\":1}}" ENAMETOOLONG
expect_commit_error "$D/f.h5" "{\"field\":\"raw\",\"key\":{\"a\":1},\"ext\":\".$long\"}" ENAMETOOLONG
check_eq "f.h5 commits fine afterwards" OK "$(commit "$D/f.h5" "$GOOD")"

# EINVAL: a symlink or special file anywhere in a directory entry
mkdir -p "$D/withlink.zarr/sub"
printf a >"$D/withlink.zarr/sub/0"
ln -s 0 "$D/withlink.zarr/sub/link"
expect_commit_error "$D/withlink.zarr" "$GOOD" EINVAL
check "symlink still there" test -L "$D/withlink.zarr/sub/link"
mkdir -p "$D/withfifo.zarr"
printf a >"$D/withfifo.zarr/0"
mkfifo "$D/withfifo.zarr/pipe"
expect_commit_error "$D/withfifo.zarr" "$GOOD" EINVAL
# a symlink as the entry itself: lsetxattr (setxattr would follow it; user.* xattrs
# on a symlink are refused by the VFS already)
ln -s f.h5 "$D/alink"
got=$(sysc lsetxattr "$D/alink" user.stagefs.commit "$GOOD")
case $got in EINVAL | EPERM) ok "commit of a symlink refused ($got)" ;; *) fail "commit of a symlink" "$got" ;; esac
check_eq "symlink still there" f.h5 "$(readlink "$D/alink")"

# EINVAL: the level directories themselves
expect_commit_error "$D" "$GOOD" EINVAL
expect_commit_error "$S/lab" "$GOOD" EINVAL
got=$(commit "$S" "$GOOD")
case $got in EINVAL | EPERM) ok "commit of staging/ refused ($got)" ;; *) fail "commit of staging/" "$got" ;; esac
check "table dir still there" test -d "$D/withlink.zarr"

# EINVAL: a directory without a file anywhere below (no bucket can hold it)
mkdir -p "$D/empty.zarr" "$D/hollow.zarr/a/b"
expect_commit_error "$D/empty.zarr" '{"field":"raw","key":{"id":1}}' EINVAL
expect_commit_error "$D/hollow.zarr" '{"field":"raw","key":{"id":1}}' EINVAL
check_eq "  and says why" "error: the directory holds no file: nothing to commit" \
	"$(xget "$D/hollow.zarr" user.stagefs.status)"

# EISDIR: hash addressing of a directory
expect_commit_error "$D/withlink.zarr" hash EISDIR

# EBUSY: a file held open for writing; a file inside a directory held open
printf 'busy' >"$D/busy.h5"
bg_start $PY -c 'import sys,time; f=open(sys.argv[1],"r+b"); f.write(b"B"); f.flush(); print("open", flush=True); time.sleep(60)' "$D/busy.h5" >"$T/holder1"
holder=$BG_PID
for i in $(seq 100); do [ -s "$T/holder1" ] && break; sleep 0.05; done
expect_commit_error "$D/busy.h5" "$GOOD" EBUSY
expect_commit_error "$D/busy.h5" hash EBUSY
kill "$holder"
wait "$holder" 2>/dev/null
check_eq "commit after the writer closed" OK "$(commit "$D/busy.h5" hash)"

mkdir -p "$D/busydir.zarr/a/b"
printf 0 >"$D/busydir.zarr/a/b/0"
printf 1 >"$D/busydir.zarr/1"
bg_start $PY -c 'import sys,time; f=open(sys.argv[1],"ab"); print("open", flush=True); time.sleep(60)' "$D/busydir.zarr/a/b/0" >"$T/holder2"
holder=$BG_PID
for i in $(seq 100); do [ -s "$T/holder2" ] && break; sleep 0.05; done
expect_commit_error "$D/busydir.zarr" "$GOOD" EBUSY
kill "$holder"
wait "$holder" 2>/dev/null
# a reader does not block a commit
bg_start $PY -c 'import sys,time; f=open(sys.argv[1],"rb"); print("open", flush=True); time.sleep(60)' "$D/busydir.zarr/1" >"$T/holder3"
holder=$BG_PID
for i in $(seq 100); do [ -s "$T/holder3" ] && break; sleep 0.05; done
check_eq "commit with only a reader open" OK "$(commit "$D/busydir.zarr" "$GOOD")"
kill "$holder"
wait "$holder" 2>/dev/null

# the CLI: exit 1 and "stagefs: commit '...': <strerror>: <reason>" on stderr
printf x >"$D/cli"
"$STAGEFS" commit "$D/cli" --field Bad --key a=1 >"$T/out" 2>"$T/err"
check_eq "stagefs commit with a bad field exits 1" 1 $?
check "stderr names the failure" grep -q "^stagefs: commit '.*cli': Invalid argument" "$T/err"
"$STAGEFS" commit "$D/cli" --field raw >"$T/out" 2>"$T/err"
check_eq "stagefs commit without --key exits 2 (usage)" 2 $?
"$STAGEFS" commit "$D/cli" --hash --field raw --key a=1 >"$T/out" 2>"$T/err"
check_eq "stagefs commit --hash with --field exits 2" 2 $?
check_eq "cli file untouched" x "$(cat "$D/cli")"

# hard links
printf 'shared' >"$D/h1"
ln "$D/h1" "$D/h2"
# a file with two names: FUSE tells the daemon the inode, not the name used,
# so which name to commit is ambiguous -> EMLINK, both names untouched
check_eq "commit a file that has another hard link" EMLINK "$(commit "$D/h1" hash)"
check_eq "the committed name is still staged" shared "$(cat "$D/h1" 2>&1)"
check_eq "the other name keeps the bytes" shared "$(cat "$D/h2" 2>&1)"
check_eq "the status names the reason" 1 "$(getfattr --only-values -n user.stagefs.status "$D/h1" 2>/dev/null | grep -c 'hard link')"
rm "$D/h2"
check_eq "with one name left it commits" OK "$(commit "$D/h1" hash)"
# inside a directory each name is known: the committed copy is unshared
mkdir -p "$D/tree"
printf 'shared' >"$D/tree/x"
ln "$D/tree/x" "$D/outside"
check_eq "commit a directory whose file has a link outside it" OK "$(commit "$D/tree" '{"field":"tree","key":{"id":7},"token":"treeTREE"}')"
printf 'X' >>"$D/outside"
check_eq "canonical bytes unaffected by a write to the other name" shared "$(cat "$MNT/_schema/lab/Sess/id=7/tree_treeTREE/x" 2>&1)"
check_eq "the outside name keeps its bytes" sharedX "$(cat "$D/outside" 2>&1)"

# link + unlink (zarr 3 writes a temp file, links it to the final name, unlinks the temp)
printf 'zarr3' >"$D/c.tmp"
ln "$D/c.tmp" "$D/c0"
rm "$D/c.tmp"
check_eq "commit a file written as temp + link + unlink" OK "$(commit "$D/c0" hash)"
mkdir -p "$D/z3.zarr"
printf 'chunk' >"$D/z3.zarr/0.tmp"
ln "$D/z3.zarr/0.tmp" "$D/z3.zarr/0"
rm "$D/z3.zarr/0.tmp"
check_eq "commit a directory holding a linked+unlinked file" OK "$(commit "$D/z3.zarr" "$GOOD")"

# closed means committable: close() then commit at once, many times (no spurious EBUSY)
out=$($PY - "$D" <<'EOF'
import errno, os, sys
d = sys.argv[1]
bad = []
for i in range(300):
    p = "%s/quick%d" % (d, i)
    with open(p, "wb") as f:
        f.write(os.urandom(4096) + b"%d" % i)
    try:
        os.setxattr(p, "user.stagefs.commit", b"hash")
    except OSError as e:
        bad.append(errno.errorcode[e.errno])
print("%d failed %s" % (len(bad), " ".join(sorted(set(bad)))))
EOF
)
check_eq "300 x (write, close, commit at once)" "0 failed " "$out"

# limits: what is too large gets a clear errno (the daemon stays up, the entry staged)
printf 'limits\n' >"$D/lim.bin"
out=$($PY - "$D/lim.bin" <<'EOF'
import errno, os, sys
p = sys.argv[1]
def try_set(name, value):
    try:
        os.setxattr(p, name, value)
        return "OK"
    except OSError as e:
        return errno.errorcode[e.errno]
v = b'{"field":"raw","key":{"id":1}}'
print(try_set("user.big", b"x" * 65536) in ("ENOSPC", "E2BIG"),     # past the backing fs's
      try_set("user." + "n" * 300, b"v"),                            # a name over 255
      try_set("user.stagefs.commit", v + b" " * (65537 - len(v))),   # past the kernel's cap
      try_set("user.stagefs.commit", b'{"field":"raw","key":{"' + b"k" * 300 + b'":1}}'))
EOF
)
check_eq "a user xattr too large: ENOSPC/E2BIG, its name: ERANGE; a commit value over 64 KiB: E2BIG, a segment over 255: ENAMETOOLONG" \
	"True ERANGE E2BIG ENAMETOOLONG" "$out"
check_eq "the entry stays staged" limits "$(cat "$D/lim.bin")"
check "the daemon is alive" kill -0 "$DAEMON_PID"

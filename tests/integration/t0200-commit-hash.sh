#!/bin/bash
# Hash-addressed commit (SPEC §4): path, bytes, receipt, metadata xattr, dedup, concurrency.
. "$(dirname "$0")/lib.sh"

HELLO=lvauakv4jmvhnolrtwiraf6fsi   # base32(md5("hello")), vectors/datajoint.json
EMPTY=2qoyzwmpaczaj2mabgmoz6ccpy   # base32(md5(""))

mount_fs || exit 1
D=$S/lab/sess
mkdir -p "$D"

# json_get FILE|- KEY: one field of a JSON document (python repr for non-strings)
json_keys() { $PY -c 'import json,sys; print(",".join(json.load(sys.stdin).keys()))'; }

printf hello >"$D/hello.txt"
cp "$D/hello.txt" "$T/hello.ref"
uploaded "$D/hello.txt"
check_eq "status before commit" staged "$(xget "$D/hello.txt" user.stagefs.status)"
check_eq "commit hello (hash)" OK "$(commit "$D/hello.txt" hash)"
check "canonical object exists" test -f "$MNT/_hash/lab/$HELLO"
check "canonical bytes identical" cmp "$T/hello.ref" "$MNT/_hash/lab/$HELLO"
check "object in the store at the same key" cmp "$T/hello.ref" "$(sobj "_hash/lab/$HELLO")"
expect_errno open_r "$D/hello.txt" ENOENT
check "staged copy gone from the store" test ! -e "$(sobj _staging/lab/sess/hello.txt)"
check_eq "canonical mode read-only" "444" "$(stat -c %a "$MNT/_hash/lab/$HELLO")"

R=$D/.receipts/hello.txt.json
check "receipt exists" test -f "$R"
check_eq "receipt keys (hash-addressed)" "hash,path,schema,store,size,addressing,staging,md5,dedup" \
	"$(json_keys <"$R")"
check_eq "receipt hash" "$HELLO" "$(json_get hash <"$R")"
check_eq "receipt path" "_hash/lab/$HELLO" "$(json_get path <"$R")"
check_eq "receipt schema" lab "$(json_get schema <"$R")"
check_eq "receipt store" stagefs "$(json_get store <"$R")"
check_eq "receipt size" 5 "$(json_get size <"$R")"
check_eq "receipt addressing" hash "$(json_get addressing <"$R")"
check_eq "receipt staging" "staging/lab/sess/hello.txt" "$(json_get staging <"$R")"
check_eq "receipt md5" 5d41402abc4b2a76b9719d911017c592 "$(json_get md5 <"$R")"
check_eq "receipt dedup" false "$(json_get dedup <"$R")"
check_eq "receipt file mode" 444 "$(stat -c %a "$R")"

# user.stagefs.metadata on the canonical path = the receipt (dedup aside)
meta=$(xget "$MNT/_hash/lab/$HELLO" user.stagefs.metadata)
check_eq "metadata xattr equals the receipt (except dedup)" same "$($PY - "$R" "$meta" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); m = json.loads(sys.argv[2])
r.pop("dedup", None); m.pop("dedup", None)
print("same" if r == m else "receipt %r != metadata %r" % (r, m))
EOF
)"

# the CLI prints the same receipt
printf hello >"$D/cli.txt"
out=$("$STAGEFS" commit "$D/cli.txt" --hash --json 2>&1)
check_eq "stagefs commit --hash --json: path" "_hash/lab/$HELLO" "$(printf '%s' "$out" | json_get path)"
check_eq "stagefs commit: dedup of the same bytes" true "$(printf '%s' "$out" | json_get dedup)"

# dedup: same bytes again -> dedup true, still one object
printf hello >"$D/again.txt"
check_eq "commit same bytes again" OK "$(commit "$D/again.txt" '{"addressing":"hash"}')"
check_eq "second receipt says dedup" true "$(json_get dedup <"$D/.receipts/again.txt.json")"
check_eq "second receipt path" "_hash/lab/$HELLO" "$(json_get path <"$D/.receipts/again.txt.json")"
check_eq "one object in store/_hash" 1 "$(skeys _hash | wc -l)"
expect_errno open_r "$D/again.txt" ENOENT
check "first receipt unchanged" test "$(json_get dedup <"$R")" = false

# empty file
: >"$D/empty"
check_eq "commit empty file" OK "$(commit "$D/empty" hash)"
check_eq "empty file hash path" "_hash/lab/$EMPTY" "$(json_get path <"$D/.receipts/empty.json")"
check_eq "empty canonical size" 0 "$(stat -c %s "$MNT/_hash/lab/$EMPTY")"

# a file written out of order (the write-time digest is invalid: commit must re-read)
$PY - "$D/ooo" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.pwrite(fd, b"llo", 2); os.pwrite(fd, b"he", 0)
os.close(fd)
EOF
check_eq "commit out-of-order file" OK "$(commit "$D/ooo" hash)"
check_eq "out-of-order file: md5 of its bytes" 5d41402abc4b2a76b9719d911017c592 \
	"$(json_get md5 <"$D/.receipts/ooo.json")"

# a file modified in place after a first sequential write (stale write-time digest)
printf 'AAAA' >"$D/mod"
printf 'B' | dd of="$D/mod" bs=1 seek=1 conv=notrunc status=none
check_eq "commit modified file" OK "$(commit "$D/mod" hash)"
check_eq "modified file md5" "$(printf ABAA | md5sum | cut -d' ' -f1)" "$(json_get md5 <"$D/.receipts/mod.json")"
check_eq "modified file canonical bytes" ABAA "$(cat "$MNT/$(json_get path <"$D/.receipts/mod.json")")"

# a large file (sequential digest) in a subdirectory
mkdir -p "$D/sub"
head -c $((8 << 20)) /dev/urandom >"$T/big"
cp "$T/big" "$D/sub/big.bin"
check_eq "commit 8 MiB file in a subdirectory" OK "$(commit "$D/sub/big.bin" hash)"
h=$(json_get hash <"$D/sub/.receipts/big.bin.json")
check_eq "hash = base32(md5)" "$($PY -c 'import base64,hashlib,sys; print(base64.b32encode(hashlib.md5(open(sys.argv[1],"rb").read()).digest()).decode().rstrip("=").lower())' "$T/big")" "$h"
check "8 MiB canonical bytes identical" cmp "$T/big" "$MNT/_hash/lab/$h"
check_eq "receipt staging path of a nested file" "staging/lab/sess/sub/big.bin" \
	"$(json_get staging <"$D/sub/.receipts/big.bin.json")"

# concurrent identical commits of two files: both succeed, one object
head -c 100000 /dev/urandom >"$T/c"
cp "$T/c" "$D/c1"
cp "$T/c" "$D/c2"
commit "$D/c1" hash >"$T/c1.out" &
p1=$!
commit "$D/c2" hash >"$T/c2.out" &
p2=$!
wait $p1 $p2
check_eq "concurrent commit 1" OK "$(cat "$T/c1.out")"
check_eq "concurrent commit 2" OK "$(cat "$T/c2.out")"
hc=$(json_get hash <"$D/.receipts/c1.json")
check_eq "both receipts name the same object" "$hc" "$(json_get hash <"$D/.receipts/c2.json")"
check_eq "exactly one of them is dedup" "false true" \
	"$(echo $(json_get dedup <"$D/.receipts/c1.json") $(json_get dedup <"$D/.receipts/c2.json") | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "one object for both" 1 "$(skeys _hash | grep -c "/$hc\$")"
check "concurrent canonical bytes" cmp "$T/c" "$MNT/_hash/lab/$hc"
check_eq "no staged leftovers" "" "$(skeys _staging/lab/sess | grep -E '/c[12]$')"

# EISDIR for a directory with hash; the directory stays
mkdir -p "$D/adir" && printf q >"$D/adir/f"
check_eq "hash commit of a directory" EISDIR "$(commit "$D/adir" hash)"
check "directory still staged" test -f "$D/adir/f"
case $(xget "$D/adir" user.stagefs.status) in
"error: "*) ok "status after EISDIR starts with error:" ;;
*) fail "status after EISDIR" "$(xget "$D/adir" user.stagefs.status)" ;;
esac

# receipts: listing, unlink allowed, read-only otherwise
check_eq "receipts listing" "again.txt.json cli.txt.json hello.txt.json" \
	"$(ls "$D/.receipts" | grep -E '^(again|cli|hello)' | tr '\n' ' ' | sed 's/ $//')"
expect_errno unlink "$D/.receipts/cli.txt.json" OK
expect_errno open_r "$D/.receipts/cli.txt.json" ENOENT
check "object stays after its receipt is removed" test -f "$MNT/_hash/lab/$HELLO"

# committing the same name again after a new write works, with a fresh receipt
printf 'hello2' >"$D/hello.txt"
check_eq "recommit a new file under a used name" OK "$(commit "$D/hello.txt" hash)"
check_eq "receipt replaced with the new hash" "$(printf hello2 | md5sum | cut -d' ' -f1)" \
	"$(json_get md5 <"$R")"

# all of it survives a remount
remount || exit 1
check "hello object after remount" cmp "$T/hello.ref" "$MNT/_hash/lab/$HELLO"
check_eq "receipt after remount" "_hash/lab/$HELLO" "$(json_get path <"$D/.receipts/again.txt.json")"
check_eq "metadata after remount" "$HELLO" \
	"$(xget "$MNT/_hash/lab/$HELLO" user.stagefs.metadata | json_get hash)"

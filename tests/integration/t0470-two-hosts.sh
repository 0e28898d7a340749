#!/bin/bash
# Two hosts on one store (two daemons, each with its own index and cache, as
# two acquisition PCs would run them): what one commits, the other lists
# within dir_cache_time (+1 s of kernel caching), opens by exact path at once
# and reads byte for byte;
# its own commits it lists at once; and when both commit the same bytes at
# the same instant, both commits succeed and the store holds one object.
# On s3 the race goes through tests/integration/s3proxy.py, which holds both
# conditional completions so that the second meets the first's object (412;
# the two mounts' If-None-Match probes account for two more).
. "$(dirname "$0")/lib.sh"

MIB=1048576
TTL=2
if [ "$S3_SERVER" = s3 ]; then
	export SFS_S3_COPY_PART_SIZE=$((5 * MIB))
	proxy_start || exit 1
fi
mount_fs -o dir_cache_time=$TTL || exit 1
mount_second -o dir_cache_time=$TTL || exit 1
check "mkdir on A" mkdir -p "$S/lab/a"
check "mkdir on B" mkdir -p "$S2/lab/b"

echo first >"$S/lab/a/y.txt"
check_eq "A commits y" OK "$(commit "$S/lab/a/y.txt" hash)"
Y=$(json_get path <"$S/lab/a/.receipts/y.txt.json")
check "B reads A's commit" cmp <(echo first) "$MNT2/$Y"
check "B lists it" grep -qx "${Y##*/}" <<<"$(ls "$MNT2/_hash/lab")"

# B has a listing of _hash/lab now; A commits another object
head -c 100000 /dev/urandom >"$T/x.ref"
cp "$T/x.ref" "$S/lab/a/x.bin"
check_eq "A commits x" OK "$(commit "$S/lab/a/x.bin" hash)"
X=$(json_get path <"$S/lab/a/.receipts/x.bin.json")
start=$(date +%s%N)
seen=0
for _ in $(seq 100); do
	if ls "$MNT2/_hash/lab" | grep -qx "${X##*/}"; then
		seen=1
		break
	fi
	sleep 0.1
done
ms=$((($(date +%s%N) - start) / 1000000))
check_eq "B lists A's new commit" 1 "$seen"
check "... within dir_cache_time + 1.5 s (took $ms ms)" test "$ms" -le $((TTL * 1000 + 1500))
check "B reads it byte for byte" cmp "$T/x.ref" "$MNT2/$X"

# an exact path opens at once, however fresh B's listing is; the listing follows
head -c 1000 /dev/urandom >"$T/w.ref"
cp "$T/w.ref" "$S/lab/a/w.bin"
ls "$MNT2/_hash/lab" >/dev/null
check_eq "A commits w" OK "$(commit "$S/lab/a/w.bin" hash)"
W=$(json_get path <"$S/lab/a/.receipts/w.bin.json")
check "B opens A's newest commit by its path at once" cmp "$T/w.ref" "$MNT2/$W"
check "... and then lists it" grep -qx "${W##*/}" <<<"$(ls "$MNT2/_hash/lab")"

# B's own commit is listed by B at once (its listings above the key are dropped)
echo mine >"$S2/lab/b/z.txt"
check_eq "B commits z" OK "$(commit "$S2/lab/b/z.txt" hash)"
Z=$(json_get path <"$S2/lab/b/.receipts/z.txt.json")
check "B lists its own commit at once" grep -qx "${Z##*/}" <<<"$(ls "$MNT2/_hash/lab")"

# both hosts commit the same 12 MiB at the same instant
head -c $((12 * MIB)) /dev/urandom >"$T/same.ref"
cp "$T/same.ref" "$S/lab/a/same.bin"
cp "$T/same.ref" "$S2/lab/b/same.bin"
if [ "$S3_SERVER" = s3 ]; then
	prules '[{"match": "^POST .*\\?uploadId=", "times": 2, "action": "delay", "delay": 1.5}]'
fi
commit "$S/lab/a/same.bin" hash >"$T/ca" &
pa=$!
commit "$S2/lab/b/same.bin" hash >"$T/cb" &
pb=$!
wait $pa $pb
check_eq "A's commit of the shared bytes" OK "$(cat "$T/ca")"
check_eq "B's commit of the shared bytes" OK "$(cat "$T/cb")"
P=$(json_get path <"$S/lab/a/.receipts/same.bin.json")
check_eq "both receipts name one path" "$P" "$(json_get path <"$S2/lab/b/.receipts/same.bin.json")"
check_eq "exactly one of them is a dedup" "false true" \
	"$(printf '%s\n' "$(json_get dedup <"$S/lab/a/.receipts/same.bin.json")" \
		"$(json_get dedup <"$S2/lab/b/.receipts/same.bin.json")" | sort | xargs)"
check_eq "one object in the store" 1 "$(skeys _hash/lab | grep -c "${P##*/}")"
check "its bytes" cmp "$T/same.ref" "$(sobj "$P")"
check "A's staged copy is gone" test ! -e "$S/lab/a/same.bin"
check "B's staged copy is gone" test ! -e "$S2/lab/b/same.bin"
check_eq "no staged objects left" "" "$(skeys _staging/lab | grep same.bin)"
if [ "$S3_SERVER" = s3 ]; then
	check "the second completion met the first's object (412)" test "$(pstat cond_412)" -ge 3
fi

# both hosts commit different bytes onto one schema key (a fixed token) at the
# same instant: one wins, the other is refused, nothing is replaced (on Ceph
# RGW, which ignores If-None-Match on CompleteMultipartUpload, a promotion claim
# decides; on s3rver the proxy's conditional completion)
head -c $((12 * MIB)) /dev/urandom >"$T/ka.ref"
head -c $((12 * MIB)) /dev/urandom >"$T/kb.ref"
mkdir -p "$S/lab/t" "$S2/lab/t"
cp "$T/ka.ref" "$S/lab/t/ka.bin"
cp "$T/kb.ref" "$S2/lab/t/kb.bin"
if [ "$S3_SERVER" = s3 ]; then
	prules '[{"match": "^POST .*\\?uploadId=", "times": 2, "action": "delay", "delay": 1.5}]'
fi
V='{"field":"k","key":{"id":7},"token":"raceTOK1"}'
commit "$S/lab/t/ka.bin" "$V" >"$T/ka" &
pa=$!
commit "$S2/lab/t/kb.bin" "$V" >"$T/kb" &
pb=$!
wait $pa $pb
check_eq "one commit wins, the other is refused" "EEXIST OK" "$(cat "$T/ka" "$T/kb" | sort | xargs)"
K=_schema/lab/t/id=7/k_raceTOK1.bin
win=b lose="$S/lab/t/ka.bin" rcpt=$S2/lab/t/.receipts/kb.bin.json
if [ "$(cat "$T/ka")" = OK ]; then win=a lose="$S2/lab/t/kb.bin" rcpt=$S/lab/t/.receipts/ka.bin.json; fi
check_eq "the winner's receipt names the key" "$K" "$(json_get path <"$rcpt")"
check "the object holds the winner's bytes" cmp "$T/k$win.ref" "$(sobj "$K")"
check "the loser's file is still staged" test -e "$lose"
check_eq "no promotion claim is left" "" "$(skeys .stagefs/claims)"
if [ "$S3_SERVER" = s3 ]; then
	check_eq "no signature refused" 0 "$(pstat sig_fail)"
fi
unmount_second

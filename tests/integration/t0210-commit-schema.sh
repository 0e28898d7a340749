#!/bin/bash
# Schema-addressed commit (SPEC §2, §4): exact paths, ext rules, key encoding,
# directory commits with the DANDI checksum, collisions.
. "$(dirname "$0")/lib.sh"

json_keys() { $PY -c 'import json,sys; print(",".join(json.load(sys.stdin).keys()))'; }
DANDI="$PY $TESTS_DIR/dandi_checksum.py"
check "independent DANDI checksum matches tests/vectors" $DANDI --selftest "$REPO_ROOT/tests/vectors/zarr_checksum.json"

mount_fs || exit 1
D=$S/lab/Sess
mkdir -p "$D"

# a file with an explicit token: the exact path
printf 'raw bytes' >"$D/raw.h5"
cp "$D/raw.h5" "$T/raw.ref"
check_eq "commit raw.h5 with token" OK \
	"$(commit "$D/raw.h5" '{"field":"raw","key":{"subject_id":1,"session":"a"},"ext":".h5","token":"abcdEFGH"}')"
P=_schema/lab/Sess/subject_id=1/session=a/raw_abcdEFGH.h5
check "exact canonical path" test -f "$MNT/$P"
check "canonical bytes identical" cmp "$T/raw.ref" "$MNT/$P"
check "store holds the object at the key" cmp "$T/raw.ref" "$(sobj "$P")"
expect_errno open_r "$D/raw.h5" ENOENT
R=$D/.receipts/raw.h5.json
check_eq "receipt keys (schema-addressed file)" \
	"path,store,size,ext,is_dir,item_count,timestamp,addressing,staging,md5" "$(json_keys <"$R")"
check_eq "receipt path" "$P" "$(json_get path <"$R")"
check_eq "receipt size" 9 "$(json_get size <"$R")"
check_eq "receipt ext" .h5 "$(json_get ext <"$R")"
check_eq "receipt is_dir" false "$(json_get is_dir <"$R")"
check_eq "receipt item_count" null "$(json_get item_count <"$R")"
check_eq "receipt addressing" schema "$(json_get addressing <"$R")"
check_eq "receipt staging" staging/lab/Sess/raw.h5 "$(json_get staging <"$R")"
check_eq "receipt md5" "$(md5 "$T/raw.ref")" "$(json_get md5 <"$R")"
check "timestamp is UTC ISO-8601 with microseconds and +00:00" \
	$PY -c 'import datetime,re,sys; s=sys.argv[1]; assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", s), s; t=datetime.datetime.fromisoformat(s); assert abs((datetime.datetime.now(datetime.timezone.utc)-t).total_seconds()) < 300' \
	"$(json_get timestamp <"$R")"
check_eq "metadata xattr equals the receipt" same "$($PY - "$R" "$(xget "$MNT/$P" user.stagefs.metadata)" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); m = json.loads(sys.argv[2])
print("same" if r == m else "receipt %r != metadata %r" % (r, m))
EOF
)"

# collision with the same explicit token -> EEXIST, staging untouched, status error
printf 'other bytes' >"$D/raw2.h5"
sum=$(md5 "$D/raw2.h5")
check_eq "same explicit token again" EEXIST \
	"$(commit "$D/raw2.h5" '{"field":"raw","key":{"subject_id":1,"session":"a"},"ext":".h5","token":"abcdEFGH"}')"
check_eq "staged file intact after EEXIST" "$sum" "$(md5 "$D/raw2.h5")"
check "canonical object unchanged after EEXIST" cmp "$T/raw.ref" "$MNT/$P"
check_eq "no receipt for the refused commit" "" "$(ls "$D/.receipts" | grep raw2)"
case $(xget "$D/raw2.h5" user.stagefs.status) in
"error: "*) ok "status after EEXIST starts with error:" ;;
*) fail "status after EEXIST" "$(xget "$D/raw2.h5" user.stagefs.status)" ;;
esac
check_eq "same key without token draws a new token" OK \
	"$(commit "$D/raw2.h5" '{"field":"raw","key":{"subject_id":1,"session":"a"},"ext":".h5"}')"
p2=$(json_get path <"$D/.receipts/raw2.h5.json")
case $p2 in
_schema/lab/Sess/subject_id=1/session=a/raw_????????.h5) ok "random token path shape ($p2)" ;;
*) fail "random token path shape" "$p2" ;;
esac
check "token alphabet" $PY -c 'import re,sys; assert re.fullmatch(r"raw_[A-Za-z0-9_-]{8}\.h5", sys.argv[1].rsplit("/",1)[1])' "$p2"
check_eq "new-token object bytes" "other bytes" "$(cat "$MNT/$p2")"

# ext: default from the name's last suffix, "" and null mean none, a missing dot is added
printf x >"$D/movie.tar.gz"
check_eq "commit without ext" OK "$(commit "$D/movie.tar.gz" '{"field":"movie","key":{"id":1},"token":"tokAAAAA"}')"
check "default ext = last suffix" test -f "$MNT/_schema/lab/Sess/id=1/movie_tokAAAAA.gz"
printf x >"$D/plain"
check_eq "commit a name without suffix" OK "$(commit "$D/plain" '{"field":"movie","key":{"id":2},"token":"tokBBBBB"}')"
check "no suffix from a name without one" test -f "$MNT/_schema/lab/Sess/id=2/movie_tokBBBBB"
printf x >"$D/e.h5"
check_eq "ext \"\"" OK "$(commit "$D/e.h5" '{"field":"movie","key":{"id":3},"ext":"","token":"tokCCCCC"}')"
check "ext \"\" -> no suffix" test -f "$MNT/_schema/lab/Sess/id=3/movie_tokCCCCC"
check_eq "receipt ext for none" null "$(json_get ext <"$D/.receipts/e.h5.json")"
printf x >"$D/n.h5"
check_eq "ext null" OK "$(commit "$D/n.h5" '{"field":"movie","key":{"id":4},"ext":null,"token":"tokDDDDD"}')"
check "ext null -> no suffix" test -f "$MNT/_schema/lab/Sess/id=4/movie_tokDDDDD"
printf x >"$D/b"
check_eq "ext without dot" OK "$(commit "$D/b" '{"field":"movie","key":{"id":5},"ext":"npy","token":"tokEEEEE"}')"
check "ext gets a leading dot" test -f "$MNT/_schema/lab/Sess/id=5/movie_tokEEEEE.npy"

# key value encoding (vectors/datajoint.json pk_value_encoding) and key order
printf x >"$D/k1"
check_eq "commit with typed key values" OK \
	"$(commit "$D/k1" '{"field":"f","key":{"s":"a/b","b":true,"x":1.5,"n":-5,"t":"2024-01-15 10:30:00","sp":"has space"},"ext":"","token":"tokFFFFF"}')"
check "encoded key path" test -f "$MNT/_schema/lab/Sess/s=a%2Fb/b=True/x=1.5/n=-5/t=2024-01-15%2010%3A30%3A00/sp=has space/f_tokFFFFF"
long=$(printf 'x%.0s' $(seq 101))
printf x >"$D/k2"
check_eq "commit with a long string key" OK \
	"$(commit "$D/k2" "{\"field\":\"f\",\"key\":{\"s\":\"$long\"},\"ext\":\"\",\"token\":\"tokGGGGG\"}")"
check "long key shortened with md5" test -f "$MNT/_schema/lab/Sess/s=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_608367d7/f_tokGGGGG"
# table override
printf x >"$D/ov"
check_eq "commit with a table override" OK \
	"$(commit "$D/ov" '{"field":"f","key":{"id":1},"table":"Other","ext":"","token":"tokHHHHH"}')"
check "table override in the path" test -f "$MNT/_schema/lab/Other/id=1/f_tokHHHHH"

# the CLI builds the same value (typed --key)
printf cli >"$D/cli.h5"
out=$("$STAGEFS" commit "$D/cli.h5" --field raw --key subject_id=7 --key session=a/b --json 2>&1)
case $(printf '%s' "$out" | json_get path 2>/dev/null) in
_schema/lab/Sess/subject_id=7/session=a%2Fb/raw_????????.h5) ok "stagefs commit --field --key" ;;
*) fail "stagefs commit --field --key" "$out" ;;
esac
printf cli >"$D/cli2"
out=$("$STAGEFS" commit "$D/cli2" --field raw --key subject_id=8 --ext '' --json 2>&1)
case $(printf '%s' "$out" | json_get path 2>/dev/null) in
_schema/lab/Sess/subject_id=8/raw_????????) ok "stagefs commit --ext ''" ;;
*) fail "stagefs commit --ext ''" "$out" ;;
esac

# a directory (zarr-like tree): item_count, size, checksum; canonical tree identical
Z=$D/frames.zarr
mkdir -p "$Z/arr/sub" "$Z/emptydir" "$Z/é"
printf '{"zarr_format":2}' >"$Z/.zgroup"
printf '{"chunks":[2],"dtype":"<i4","shape":[4],"zarr_format":2}' >"$Z/arr/.zarray"
head -c 5000 /dev/urandom >"$Z/arr/0"
head -c 7000 /dev/urandom >"$Z/arr/1"
printf 'deep' >"$Z/arr/sub/x"
printf 'unicode name' >"$Z/é/x"
: >"$Z/arr/empty_chunk"
cp -a "$Z" "$T/frames.ref"
want_sum=$($DANDI "$T/frames.ref")
want_count=$(find "$T/frames.ref" -type f | wc -l)
want_size=$(find "$T/frames.ref" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
check_eq "commit a directory" OK \
	"$(commit "$Z" '{"field":"frames","key":{"subject_id":1,"session":"a"},"token":"zarrTOKN"}')"
ZP=_schema/lab/Sess/subject_id=1/session=a/frames_zarrTOKN.zarr
RZ=$D/.receipts/frames.zarr.json
check_eq "dir receipt keys" "path,store,size,ext,is_dir,item_count,timestamp,addressing,staging,checksum" \
	"$(json_keys <"$RZ")"
check_eq "dir receipt path (ext from the name)" "$ZP" "$(json_get path <"$RZ")"
check_eq "dir receipt is_dir" true "$(json_get is_dir <"$RZ")"
check_eq "dir receipt item_count (7 files)" "$want_count" "$(json_get item_count <"$RZ")"
check_eq "dir receipt size" "$want_size" "$(json_get size <"$RZ")"
check_eq "dir receipt checksum (independent DANDI checksum)" "$want_sum" "$(json_get checksum <"$RZ")"
if [ "$BACKEND" = s3 ]; then
	# an object store has no directories: an empty one is not stored (it is not
	# part of the checksum or item_count either)
	find "$T/frames.ref" -type d -empty -delete
fi
check "canonical tree identical (diff -r)" diff -r "$T/frames.ref" "$MNT/$ZP"
check_eq "checksum of the canonical copy" "$want_sum" "$($DANDI "$MNT/$ZP")"
expect_errno opendir "$Z" ENOENT
check "staged tree gone from the store" test -z "$(skeys _staging/lab/Sess/frames.zarr)"
check_eq "dir metadata xattr" "$want_sum" "$(xget "$MNT/$ZP" user.stagefs.metadata | json_get checksum)"
expect_errno create "$MNT/$ZP/new" EROFS

# a nested directory inside the table dir commits with its own receipt dir
mkdir -p "$D/run1/trace.zarr"
printf a >"$D/run1/trace.zarr/0"
check_eq "commit a nested directory" OK "$(commit "$D/run1/trace.zarr" '{"field":"trace","key":{"run":1},"token":"nestTOKN"}')"
check "nested dir canonical" test -f "$MNT/_schema/lab/Sess/run=1/trace_nestTOKN.zarr/0"
check_eq "nested receipt item_count" 1 "$(json_get item_count <"$D/run1/.receipts/trace.zarr.json")"

# vectors/datajoint.json object_paths without partitioning, driven through the mount
for c in myschema/Rec lab/Session lab/Scan; do mkdir -p "$S/$c"; done
printf v1 >"$S/myschema/Rec/raw.zarr.bin"
check_eq "vector Rec" OK "$(commit "$S/myschema/Rec/raw.zarr.bin" '{"field":"raw","key":{"id":1},"ext":".zarr","token":"vpupxZ_p"}')"
check "vector path _schema/myschema/Rec/id=1/raw_vpupxZ_p.zarr" test -f "$MNT/_schema/myschema/Rec/id=1/raw_vpupxZ_p.zarr"
printf v2 >"$S/lab/Scan/m.tif"
check_eq "vector Scan" OK "$(commit "$S/lab/Scan/m.tif" '{"field":"movie","key":{"animal":"a/b","scan":"2024-01-15 10:30:00"},"ext":".tif","token":"tMe-eWhk"}')"
check "vector path _schema/lab/Scan/animal=a%2Fb/scan=2024-01-15%2010%3A30%3A00/movie_tMe-eWhk.tif" \
	test -f "$MNT/_schema/lab/Scan/animal=a%2Fb/scan=2024-01-15%2010%3A30%3A00/movie_tMe-eWhk.tif"

# partition_pattern (remount with the option)
remount -o 'partition_pattern={mouse_id}/{session_date}' || exit 1
mkdir -p "$S/myschema/__spikes"
printf w >"$S/myschema/__spikes/w.npy"
check_eq "commit with partition_pattern" OK \
	"$(commit "$S/myschema/__spikes/w.npy" '{"field":"waveforms","key":{"mouse_id":0,"session_date":"2017-05-15","spike_param_id":1},"ext":".npy","token":"kKIg4UzX"}')"
check "partitioned path (vector)" test -f "$MNT/_schema/mouse_id=0/session_date=2017-05-15/myschema/__spikes/spike_param_id=1/waveforms_kKIg4UzX.npy"
check "earlier objects still readable after remount" cmp "$T/raw.ref" "$MNT/$P"

#!/bin/bash
# A full disk under staging (the store for file, the cache for s3): the writer
# gets ENOSPC, nothing already written is lost, and writing works again once
# there is room (SPEC §7: ENOSPC is reported, not swallowed).
. "$(dirname "$0")/lib.sh"

SMALL=$T/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=24m tmpfs "$SMALL" || { skip "cannot mount a small tmpfs"; exit 77; }
at_exit 'umount "$SMALL" 2>/dev/null || umount -l "$SMALL"'
if [ "$BACKEND" = s3 ]; then
	BACKEND_OPTS="cache_dir=$SMALL/cache"
else
	SOURCE=$SMALL/store
	mkdir -p "$SOURCE"
	STORE=$SOURCE
fi
mount_fs || exit 1
D=$S/lab/full
check "mkdir" mkdir -p "$D"
head -c $((4 << 20)) /dev/urandom >"$T/keep.ref"
check "a first file fits" cp "$T/keep.ref" "$D/keep.bin"

out=$(write_mib "$D/big.bin" 64)
check_eq "the writer gets ENOSPC" ENOSPC "$out"
check "the file written before is intact" cmp "$T/keep.ref" "$D/keep.bin"
uploaded "$D/keep.bin"
check "and is still in the store" cmp "$T/keep.ref" "$(sobj _staging/lab/full/keep.bin)"
# a commit while the disk is full: on file the store itself is full, so the
# object's record cannot be written and the commit fails before anything
# moves; on s3 only the cache is full and the commit goes through
r=$(commit "$D/keep.bin" '{"field":"raw","key":{"id":1},"token":"fullTOK1"}')
if [ "$BACKEND" = s3 ]; then
	check_eq "s3: a commit while the cache is full goes through" OK "$r"
	check "and the object reads back" cmp "$T/keep.ref" "$MNT/_schema/lab/full/id=1/raw_fullTOK1.bin"
else
	check_eq "file: a commit while the store is full fails with ENOSPC" ENOSPC "$r"
	check "the staged file is intact" cmp "$T/keep.ref" "$D/keep.bin"
	check "no canonical object was left" test ! -e "$MNT/_schema/lab/full/id=1/raw_fullTOK1.bin"
	check "its status says why" grep -q 'error: .*No space' <<<"$(xget "$D/keep.bin" user.stagefs.status)"
	check "the daemon keeps serving: the staged file reads back" cmp "$T/keep.ref" "$D/keep.bin"
fi
check "remove the partial file" rm -f "$D/big.bin"
[ "$BACKEND" = s3 ] && cp "$T/keep.ref" "$D/keep.bin" # committed above: staged again
check "writing works again" cp "$T/keep.ref" "$D/again.bin"
check "the new file reads back" cmp "$T/keep.ref" "$D/again.bin"
check_eq "commit after the full disk" OK "$(commit "$D/keep.bin" hash)"

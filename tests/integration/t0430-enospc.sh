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
check "and is still in the store" cmp "$T/keep.ref" "$(sobj _staging/lab/full/keep.bin)"
check "remove the partial file" rm -f "$D/big.bin"
check "writing works again" cp "$T/keep.ref" "$D/again.bin"
check "the new file reads back" cmp "$T/keep.ref" "$D/again.bin"
check_eq "commit after the full disk" OK "$(commit "$D/keep.bin" hash)"

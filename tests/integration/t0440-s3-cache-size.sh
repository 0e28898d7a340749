#!/bin/bash
# cache_size bounds the local staging cache of the s3 backend: stored, closed
# files are evicted (their bytes stay in the bucket, their size and times in the
# listing) and come back when opened; a writer that alone overflows the cache
# gets ENOSPC; nothing is lost.
. "$(dirname "$0")/lib.sh"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
mount_fs -o cache_size=8M || exit 1
D=$S/lab/cache
check "mkdir" mkdir -p "$D"
CACHE=$(find "$T/cache" -type d -name _staging | head -1)
check "the staging cache exists" test -d "$CACHE"
for f in a b c d; do
	head -c $((5 << 20)) /dev/urandom >"$T/$f.ref"
	check "write $f (5 MiB, closed)" cp "$T/$f.ref" "$D/$f.bin"
done
used=$(du -s --block-size=1 "$CACHE" | cut -f1)
check "the cache stays near 8 MiB after 20 MiB staged (uses $used bytes)" test "$used" -le $((10 << 20))
evicted=$(getfattr -d -m user.stagefs.evicted -R "$CACHE" 2>/dev/null | grep -c '^# file:')
check "some files were evicted ($evicted)" test "$evicted" -ge 2
check_eq "listing sizes stay exact" "5242880 5242880 5242880 5242880" \
	"$(stat -c %s "$D/a.bin" "$D/b.bin" "$D/c.bin" "$D/d.bin" | xargs)"
# commit a file while it is evicted: its digest was computed while it was written
check "a.bin is evicted" getfattr -n user.stagefs.evicted "$CACHE/lab/cache/a.bin"
check_eq "commit an evicted file" OK "$(commit "$D/a.bin" '{"field":"raw","key":{"id":1},"token":"evictTOK"}')"
check "its canonical bytes" cmp "$T/a.ref" "$MNT/_schema/lab/cache/id=1/raw_evictTOK.bin"
for f in b c d; do
	check "$f reads back (fetched if evicted)" cmp "$T/$f.ref" "$D/$f.bin"
done

out=$(write_mib "$D/huge.bin" 12)
check_eq "a 12 MiB file written in one open gets ENOSPC" ENOSPC "$out"
# a full cache (nothing evictable: the open file is not stored) answers ENOSPC
# without walking the whole cache again for every write
rescans() { xget "$MNT" user.stagefs.status | sed -E 's/.*cache-rescans ([0-9]+).*/\1/'; }
before=$(rescans)
out=$($PY - "$D/huge.bin" <<'PYEOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
fails = 0
for _ in range(50):
    try:
        os.write(fd, b"y" * (1 << 20))
    except OSError as e:
        fails += e.errno == errno.ENOSPC
os.close(fd)
print(fails)
PYEOF
)
check_eq "50 writes to a full cache all get ENOSPC" 50 "$out"
after=$(rescans)
check "the cache was walked at most twice for them ($before -> $after)" test $((after - before)) -le 2
check "remove it" rm -f "$D/huge.bin"
for f in b c d; do
	check "$f still intact" cmp "$T/$f.ref" "$D/$f.bin"
done
check "and in the bucket" cmp "$T/d.ref" "$(sobj _staging/lab/cache/d.bin)"
remount -o cache_size=8M || exit 1
check "after a remount an evicted file still reads back" cmp "$T/b.ref" "$D/b.bin"

# an allocation that fails while the cache is walked: the write fails, the daemon lives on
export STAGEFS_FAULTS=cache-scan-alloc@2 # the walk at mount allocates once
remount -o cache_size=8M || exit 1
unset STAGEFS_FAULTS
out=$(write_mib "$D/more.bin" 12)
case $out in ENOMEM | ENOSPC) ok "a write whose cache walk runs out of memory fails ($out)" ;;
*) fail "a write whose cache walk runs out of memory fails" "$out" ;; esac
check "the daemon is still there" kill -0 "$DAEMON_PID"
check "and serves: c reads back" cmp "$T/c.ref" "$D/c.bin"
grep -q "fault point 'cache-scan-alloc' reached" "$T/daemon.log" && ok "the fault was hit" ||
	fail "the fault was hit" "$(tail -n 5 "$T/daemon.log")"

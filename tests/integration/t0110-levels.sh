#!/bin/bash
# staging/ levels 1 and 2 hold only directories with names [A-Za-z0-9_#]{1,64};
# ".receipts" is reserved (SPEC §3).
. "$(dirname "$0")/lib.sh"

mount_fs || exit 1

# the mount root
check_eq "root lists staging and the canonical prefixes" "_hash _schema staging" \
	"$(ls "$MNT" | sort | tr '\n' ' ' | sed 's/ $//')"
expect_errno create "$MNT/file" EROFS
expect_errno mkdir "$MNT/newdir" EROFS

# level 1 (staging/) and level 2 (staging/<schema>/): files, symlinks, nodes -> EPERM
for lvl in "$S" "$S/lab"; do
	[ "$lvl" = "$S/lab" ] && mkdir -p "$S/lab"
	rel=${lvl#$MNT/}
	expect_errno create "$lvl/f" EPERM
	expect_errno create_excl "$lvl/f" EPERM
	expect_errno symlink target "$lvl/sl" EPERM
	expect_errno mknod "$lvl/fifo" fifo EPERM
	expect_errno mknod "$lvl/reg" reg EPERM
	check_eq "nothing appeared in $rel" "" "$(ls -A "$lvl" | grep -v -x -e lab -e sess)"
done
mkdir -p "$S/lab/sess"
printf x >"$S/lab/sess/f"
expect_errno link "$S/lab/sess/f" "$S/lab/hard" EPERM
expect_errno link "$S/lab/sess/f" "$S/hard" EPERM

# bad names at levels 1-2 -> EINVAL; good names work
for bad in "a-b" "a.b" "a b" "é" "$(printf 'x%.0s' $(seq 65))" ".hidden" "a+b"; do
	expect_errno mkdir "$S/$bad" EINVAL
	expect_errno mkdir "$S/lab/$bad" EINVAL
done
for good in "A" "z9" "_x" "has#hash" "$(printf 'y%.0s' $(seq 64))" "MiXeD_09#"; do
	expect_errno mkdir "$S/$good" OK
	expect_errno mkdir "$S/lab/$good" OK
done
# any name is fine from level 3 on
expect_errno mkdir "$S/lab/sess/a-b.c d" OK
expect_errno create "$S/lab/sess/file.with-dashes" OK

# .receipts is reserved at every level inside a table
expect_errno mkdir "$S/lab/sess/.receipts" EPERM
expect_errno create "$S/lab/sess/.receipts" EPERM
expect_errno symlink x "$S/lab/sess/.receipts" EPERM
mkdir -p "$S/lab/sess/sub"
expect_errno mkdir "$S/lab/sess/sub/.receipts" EPERM
expect_errno create "$S/lab/sess/sub/.receipts" EPERM
expect_errno rename "$S/lab/sess/f" "$S/lab/sess/.receipts" EPERM
expect_errno mkdir "$S/lab/.receipts" EINVAL
check "staged f still there after the refused rename" test -f "$S/lab/sess/f"

# rename across levels -> EPERM; within a level the name rules hold
mkdir -p "$S/lab2/t2"
expect_errno rename "$S/lab/sess/f" "$S/lab/f" EPERM
expect_errno rename "$S/lab/sess/f" "$S/f" EPERM
expect_errno rename "$S/lab/sess" "$S/sess" EPERM
expect_errno rename "$S/lab/sess" "$S/lab2/t2/sess" EPERM
expect_errno rename "$S/lab2" "$S/lab/sess/lab2" EPERM
expect_errno rename "$S/lab2/t2" "$S/lab/bad-name" EINVAL
expect_errno rename "$S/lab2/t2" "$S/lab/t2moved" OK
expect_errno rename "$S/lab2" "$S/lab3" OK
expect_errno rename "$S/lab3" "$S/bad.name" EINVAL
check "level-2 dir moved between schemas" test -d "$S/lab/t2moved"
# rename out of staging into the canonical tree -> EROFS (or EXDEV), never success
got=$(sysc rename "$S/lab/sess/f" "$MNT/_schema/f")
case $got in EROFS | EXDEV) ok "rename into _schema refused ($got)" ;; *) fail "rename into _schema" "got $got" ;; esac
check "f still staged" test -f "$S/lab/sess/f"

# rmdir of level dirs works when empty
expect_errno rmdir "$S/lab/A" OK
expect_errno rmdir "$S/A" OK
expect_errno rmdir "$S/lab" ENOTEMPTY

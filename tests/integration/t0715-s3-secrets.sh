#!/bin/bash
# Secrets (issue 12): the bucket's secret key is refused in -o and in the SOURCE
# URL without being echoed; a config file holding one must be 0600; and a mount
# that has it (from the file or from AWS_SECRET_ACCESS_KEY) never shows it in
# --help, its log (also with -d), its /proc/PID/cmdline or the index.  On RGW the
# mount from the 0600 file must also sign with it (a wrong secret is refused).
. "$(dirname "$0")/lib.sh"

if [ "$BACKEND" != s3 ]; then
	skip "s3 backend only"
	exit 77
fi
SECRET=$AWS_SECRET_ACCESS_KEY
nosecret() { # desc file...: no file holds the secret
	local d=$1
	shift
	check "$d" sh -c "! cat $(printf "'%s' " "$@") 2>/dev/null | tr '\0' '\n' | grep -qF -- '$SECRET'"
}
out=$("$STAGEFS" -f -o "secret_key=$SECRET" "$SOURCE" "$MNT" 2>&1)
check "-o secret_key is refused" test $? -ne 0
check "and says where a secret goes" grep -q "AWS_SECRET_ACCESS_KEY\|config file" <<<"$out"
printf '%s\n' "$out" >"$T/o.out"
nosecret "without echoing it" "$T/o.out"
out=$("$STAGEFS" -f "$SOURCE&secret_key=$SECRET" "$MNT" 2>&1)
check "a secret in the SOURCE URL is refused" test $? -ne 0
printf '%s\n' "$out" >"$T/url.out"
nosecret "without echoing it" "$T/url.out"
"$STAGEFS" --help >"$T/help.out" 2>&1
nosecret "--help shows no secret from the environment" "$T/help.out"

# a config file with the secret: 0644 is refused, 0600 mounts
ep=${SOURCE#*endpoint=}
ep=${ep%%&*}
cat >"$T/mount.conf" <<CONF
[store]
backend = s3
bucket = stagefs-test
location = p
endpoint = $ep
region = us-east-1
path_style = true
access_key = $AWS_ACCESS_KEY_ID
secret_key = $SECRET
CONF
chmod 0644 "$T/mount.conf"
saved_secret=$AWS_SECRET_ACCESS_KEY
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
out=$("$STAGEFS" -f -o "index=$INDEX,$BACKEND_OPTS" "$T/mount.conf" "$MNT" 2>&1)
check "a config file with a secret, readable by others, is refused" test $? -ne 0
check "with the fix named" grep -q "chmod 600" <<<"$out"
chmod 0600 "$T/mount.conf"
SOURCE=$T/mount.conf
mount_fs -d || exit 1
mkdir -p "$S/lab/Sec" && printf 'signed\n' >"$S/lab/Sec/a.txt"
check_eq "the mount from the 0600 file works (and signs with it)" OK "$(commit "$S/lab/Sec/a.txt" hash)"
nosecret "its /proc/PID/cmdline holds no secret" "/proc/$DAEMON_PID/cmdline"
unmount_fs
nosecret "its log (with -d) holds no secret" "$T/daemon.log"
nosecret "nor its index" "$INDEX" "$INDEX-wal"
export AWS_SECRET_ACCESS_KEY=$saved_secret AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key = //p' "$T/mount.conf")
if [ "$S3_SERVER" = rgw ]; then
	sed -i "s/^secret_key = .*/secret_key = wrong${SECRET#?????}/" "$T/mount.conf"
	unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	check "RGW refuses a wrong secret at mount" sh -c "! timeout 60 '$STAGEFS' -f -o 'index=$T/other.db,$BACKEND_OPTS' '$T/mount.conf' '$MNT' >'$T/wrong.out' 2>&1"
	nosecret "and the error does not show the right one" "$T/wrong.out"
fi

#!/bin/bash
# stagefs doctor (issue 13): the machine (/dev/fuse, fusermount3, fuse.conf), then for a
# SOURCE the configuration, index and cache directories, credentials, the store, and on
# s3 the clock against the server's Date and If-None-Match; a problem comes with its fix
# and makes the exit status 1.  The probe object it writes is removed.
. "$(dirname "$0")/lib.sh"

doc() { "$STAGEFS" doctor "$@" 2>&1; }
out=$(doc)
check_eq "without SOURCE: the machine, no problem" 0 $?
check "/dev/fuse checked" grep -q "^ok       /dev/fuse" <<<"$out"
check "fusermount3 checked" grep -q "^ok       fusermount3" <<<"$out"
check "fuse.conf read" grep -qE "^(ok|note) +/etc/fuse.conf" <<<"$out"

mount_fs || exit 1
unmount_fs
out=$(doc "$SOURCE" -o "index=$INDEX${BACKEND_OPTS:+,$BACKEND_OPTS}")
printf "%s\n" "$out" >"$T/doctor.out"
rc=$?
check_eq "the test's store: no problem" "0 problems" "$(tail -n 1 <<<"$out")"
check_eq "and exit status 0" 0 $rc
check "it is a stagefs store" grep -q "^ok       store: .*is a stagefs store" <<<"$out"
check "the index directory is writable, with free space" grep -q "^ok       index: .*free)" <<<"$out"
if [ "$BACKEND" = s3 ]; then
	check "the cache directory too" grep -qE "^(ok|note) +cache: " <<<"$out"
	check "the clock is compared with the server's" grep -qE "^(ok|note) +clock: " <<<"$out"
	case $S3_SERVER in
	rgw) check "RGW honours If-None-Match on PUT" grep -q "^ok       conditional writes: If-None-Match honoured" <<<"$out"
		check "and url-encodes listings" grep -q "^ok       listings: " <<<"$out" ;;
	*) check "s3rver ignores If-None-Match" grep -q "^note     conditional writes: If-None-Match ignored" <<<"$out"
		check "and sends listing keys raw" grep -q "^note     listings: " <<<"$out" ;;
	esac
	check_eq "the probe object is gone" "" "$(skeys .stagefs | grep doctor)"
	# an endpoint nobody answers at
	port=$(_free_port)
	out=$(doc "s3://stagefs-test/p?endpoint=http://127.0.0.1:$port&region=us-east-1&path_style=1" \
		-o "index=$INDEX,cache_dir=$T/cache")
	check_eq "an unreachable endpoint is a problem" 1 $?
	check "with the fix" grep -q "fix: check endpoint=" <<<"$out"
	if [ "$S3_SERVER" = rgw ]; then
		out=$(AWS_SECRET_ACCESS_KEY=wrong$AWS_SECRET_ACCESS_KEY doc "$SOURCE" -o "index=$INDEX,cache_dir=$T/cache")
		check "a wrong secret: refused, and the fix names the credentials" grep -q "fix: check access_key/secret_key" <<<"$out"
	fi
	# a server whose clock is 26 years behind ours
	port=$(_free_port)
	$PY - "$port" >"$T/date.log" 2>&1 <<'PYEOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def date_time_string(self, timestamp=None):
        return "Sat, 01 Jan 2000 00:00:00 GMT"
    def do_HEAD(self):
        self.send_response(403); self.send_header("Content-Length", "0"); self.end_headers()
    do_GET = do_HEAD
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PYEOF
	srv=$!
	at_exit "kill $srv 2>/dev/null"
	for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
	out=$(doc "s3://stagefs-test/p?endpoint=http://127.0.0.1:$port&region=us-east-1&path_style=1" \
		-o "index=$INDEX,cache_dir=$T/cache")
	check "a server clock 26 years off is a problem, with the fix" \
		grep -q "^problem  clock: .* ahead of the server's" <<<"$out"
	check "naming what sets the clock" grep -q "fix: set the clock" <<<"$out"
	kill $srv 2>/dev/null
fi
# a configuration that does not parse, an index nobody may write
out=$(doc "$SOURCE" -o "no_such_key=1")
check_eq "a bad option is a problem" 1 $?
check "named" grep -q "^problem  configuration: .*no_such_key" <<<"$out"
out=$(doc "$SOURCE" -o "index=/etc/passwd/x.db${BACKEND_OPTS:+,$BACKEND_OPTS}")
check "an index where none can be made is a problem" grep -q "^problem  index: .*not a directory" <<<"$out"
check "with its fix" grep -q "fix: choose another path" <<<"$out"

#!/usr/bin/python3
"""s3proxy.py - an S3 test server of our own, in front of s3rver.

s3rver stores objects well but trusts every signature and lacks two things
stagefs uses against real services.  This proxy sits between stagefs and
s3rver on loopback and adds them:

  * SigV4 verification, written independently of stagefs's C signer (Python's
    hmac/hashlib): every request's header signature and payload hash are
    recomputed; a mismatch is answered 403 SignatureDoesNotMatch (as S3 does)
    and counted.
  * Conditional creates: PUT and CompleteMultipartUpload with
    `If-None-Match: *` answer 412 PreconditionFailed when the key exists
    (checked and written under one lock, so two racing creates cannot both
    win).  --no-conditional answers 501 NotImplemented instead;
    --ignore-conditional-complete passes CompleteMultipartUpload through
    whatever If-None-Match says (as Ceph RGW 16.2 does) and counts it.
  * UploadPartCopy (`PUT ?partNumber&uploadId` with x-amz-copy-source[-range]):
    the range is read from s3rver and stored as the part.
  * Faults, set at run time: POST /__proxy/rules with a JSON list of rules,
    each {"match": regex on "METHOD /path?query", "skip": N (let N matches
    through first), "times": N (-1 = always), "action": "status" | "reset" |
    "delay" | "endless-list", "status": 500, "code": "InternalError",
    "delay": seconds, "token": "same" | "new"}.  "endless-list" answers a
    ListObjectsV2 with an empty page that says it is truncated, with the same
    continuation token every time or a new one each time.
    "reset" closes the connection without an answer before reading the body
    (a server dying mid-upload); "delay" waits, then serves the request.
    When s3rver itself is down the proxy also closes without an answer.
  * Multipart uploads left behind: the proxy keeps the uploads it saw begun
    and not yet completed or aborted, answers ListMultipartUploads
    (`GET /bucket?uploads&prefix=P`) from them and AbortMultipartUpload
    (`DELETE /bucket/key?uploadId=X`) itself; s3rver implements neither.
  * --log FILE: a line "METHOD /path?query" when a request arrives and
    "= METHOD /path?query -> status" when it is answered.
  * GET /__proxy/stats: counters as JSON (requests, sig_ok, sig_fail,
    upload_part_copy, cond_created, cond_412, faults, upstream_down).

usage: s3proxy.py --listen PORT --upstream PORT [--access-key K --secret-key S]
                  [--no-conditional] [--ignore-conditional-complete]
                  [--log FILE] [--ready-file FILE]
"""
import argparse
import collections
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape as xml_escape

HOP = {"connection", "keep-alive", "expect", "transfer-encoding", "content-length", "te"}

lock = threading.Lock()  # rules, stats, log
cond_lock = threading.Lock()  # conditional creates: check + write as one step
uploads_lock = threading.Lock()
uploads = {}  # (bucket, key) + upload id -> initiated (ISO-8601), begun and not ended
rules = []
stats = collections.Counter()
args = None


def count(name, n=1):
    with lock:
        stats[name] += n


def xml_error(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '</Error>' % (code, message)).encode()


def sigv4_problem(method, raw_path, headers, body):
    """None when the request's SigV4 header signature is valid, else (status, code, why)."""
    auth = headers.get("Authorization", "")
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request,"
                     r" ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})", auth)
    if not m:
        return 403, "AccessDenied", "no or malformed SigV4 Authorization header"
    key, day, region, signed, sig = m.groups()
    if key != args.access_key:
        return 403, "InvalidAccessKeyId", "unknown access key"
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(day):
        return 403, "SignatureDoesNotMatch", "x-amz-date does not match the credential scope"
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return 403, "AccessDenied", "bad x-amz-date"
    if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 900:
        return 403, "RequestTimeTooSkewed", "x-amz-date is more than 15 minutes off"
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names or "x-amz-content-sha256" not in names:
        return 403, "AccessDenied", "host, x-amz-date and x-amz-content-sha256 must be signed"
    payload = headers.get("x-amz-content-sha256", "")
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return 400, "XAmzContentSHA256Mismatch", "the body does not hash to x-amz-content-sha256"
    path, _, query = raw_path.partition("?")
    # S3 decodes the path once and re-encodes it (no double encoding, '/' kept)
    c_uri = urllib.parse.quote(urllib.parse.unquote(path), safe="/~")
    pairs = []
    for item in query.split("&") if query else []:
        k, _, v = item.partition("=")
        pairs.append((urllib.parse.quote(urllib.parse.unquote(k), safe="~"),
                      urllib.parse.quote(urllib.parse.unquote(v), safe="~")))
    c_query = "&".join("%s=%s" % kv for kv in sorted(pairs))
    c_headers = ""
    for n in names:
        vals = headers.get_all(n)
        if vals is None:
            return 403, "AccessDenied", "signed header %s is missing" % n
        c_headers += n + ":" + ",".join(" ".join(v.split()) for v in vals) + "\n"
    creq = "\n".join([method, c_uri, c_query, c_headers, signed, payload])
    scope = "%s/%s/s3/aws4_request" % (day, region)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + args.secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig):
        return 403, "SignatureDoesNotMatch", "signature mismatch; canonical request:\n" + creq
    return None


def take_fault(line):
    with lock:
        for r in rules:
            if not re.search(r.get("match", ""), line):
                continue
            if r.get("skip", 0) > 0:
                r["skip"] -= 1
                continue
            if r.get("times", 1) == 0:
                continue
            if r.get("times", 1) > 0:
                r["times"] = r.get("times", 1) - 1
            stats["faults"] += 1
            return dict(r)
    return None


class UpstreamDown(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    up = None

    def log_message(self, fmt, *a):
        pass

    def note(self, status):
        """Log the outcome ("= METHOD /path?query -> status"); arrivals are logged bare."""
        if args.log:
            with lock, open(args.log, "a") as f:
                f.write("= %s %s -> %s\n" % (self.command, self.path, status))

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.note(status)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def upstream(self, method, path, body=b"", headers=None):
        """(status, reason, headers list, body) from s3rver; UpstreamDown when it is gone."""
        for attempt in (0, 1):
            if self.up is None:
                self.up = http.client.HTTPConnection("127.0.0.1", args.upstream, timeout=120)
            try:
                self.up.request(method, path, body=body, headers=headers or {})
                r = self.up.getresponse()
                data = r.read()
                return r.status, r.reason, r.getheaders(), data
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                    http.client.RemoteDisconnected, socket.timeout, OSError):
                self.up.close()
                self.up = None
                if attempt:
                    raise UpstreamDown()
        raise UpstreamDown()

    def fwd_headers(self, body_len):
        h = {k: v for k, v in self.headers.items()
             if k.lower() not in HOP and not k.lower().startswith("if-")}
        h["Content-Length"] = str(body_len)
        return h

    def relay(self, status, reason, hdrs, data):
        self.send_response(status, reason)
        for k, v in hdrs:
            if k.lower() in HOP:
                continue
            self.send_header(k, v)
        if self.command == "HEAD":
            cl = [v for k, v in hdrs if k.lower() == "content-length"]
            self.send_header("Content-Length", cl[0] if cl else "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.note(status)

    def control(self, body):
        global rules
        if self.command == "POST" and self.path == "/__proxy/rules":
            with lock:
                rules = json.loads(body or b"[]")
            return self.reply(200, b"{}")
        if self.command == "GET" and self.path == "/__proxy/stats":
            with lock:
                data = json.dumps(dict(stats)).encode()
            return self.reply(200, data, [("Content-Type", "application/json")])
        return self.reply(404, b"")

    def handle_one(self):
        line = "%s %s" % (self.command, self.path)
        if self.path.startswith("/__proxy/"):
            return self.control(self.read_body())
        count("requests")
        if args.log:
            with lock, open(args.log, "a") as f:
                f.write(line + "\n")
        fault = take_fault(line)
        if fault and fault.get("action") == "reset":
            self.note("reset")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self.read_body()
        if fault and fault.get("action") == "delay":
            time.sleep(float(fault.get("delay", 1)))
        elif fault and fault.get("action") == "endless-list":
            token = "again" if fault.get("token") == "same" else "page%d" % stats["requests"]
            return self.reply(200, ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
                                    "<IsTruncated>true</IsTruncated><KeyCount>0</KeyCount>"
                                    "<NextContinuationToken>%s</NextContinuationToken>"
                                    "</ListBucketResult>" % token).encode(),
                              [("Content-Type", "application/xml")])
        elif fault:
            return self.reply(int(fault.get("status", 500)),
                              xml_error(fault.get("code", "InternalError"), "injected fault"),
                              [("Content-Type", "application/xml")])
        problem = sigv4_problem(self.command, self.path, self.headers, body)
        if problem:
            count("sig_fail")
            status, code, why = problem
            sys.stderr.write("s3proxy: %s: %s\n" % (line, why))
            return self.reply(status, xml_error(code, why.split("\n")[0]),
                              [("Content-Type", "application/xml")])
        count("sig_ok")
        if self.command == "PUT" and "x-amz-copy-source" in self.headers:
            count("copies")  # CopyObject and UploadPartCopy alike
        path, _, query = self.path.partition("?")
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        try:
            if (self.command == "PUT" and "partNumber" in q and "uploadId" in q
                    and "x-amz-copy-source" in self.headers):
                return self.upload_part_copy(path, q)
            if self.command == "GET" and "uploads" in q:
                return self.list_uploads(path, q)
            if self.command == "DELETE" and "uploadId" in q:
                return self.abort_upload(path, q)
            if self.command == "POST" and "uploads" in q:
                out = self.upstream(self.command, self.path, body, self.fwd_headers(len(body)))
                m = re.search(rb"<UploadId>([^<]+)</UploadId>", out[3])
                if out[0] // 100 == 2 and m:
                    when = datetime.datetime.now(datetime.timezone.utc)
                    with uploads_lock:
                        uploads[self.upload_key(path) + (m.group(1).decode(),)] = \
                            when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
                return self.relay(*out)
            cond = self.headers.get("If-None-Match", "").strip() == "*"
            complete = self.command == "POST" and "uploadId" in q
            if cond and complete and args.ignore_conditional_complete:
                count("cond_complete_ignored")
                cond = False
            if cond and ((self.command == "PUT" and "partNumber" not in q) or complete):
                if not args.conditional:
                    return self.reply(501, xml_error("NotImplemented", "If-None-Match"),
                                      [("Content-Type", "application/xml")])
                with cond_lock:
                    st, _, _, _ = self.upstream("HEAD", path, headers=self.fwd_headers(0))
                    if st == 200:
                        count("cond_412")  # as S3: a refused upload stays until aborted
                        return self.reply(412, xml_error("PreconditionFailed",
                                                         "At least one of the pre-conditions "
                                                         "you specified did not hold"),
                                          [("Content-Type", "application/xml")])
                    out = self.upstream(self.command, self.path, body,
                                        self.fwd_headers(len(body)))
                    if out[0] // 100 == 2:
                        count("cond_created")
                    if complete:
                        self.upload_ended(path, q, out[0])
                    return self.relay(*out)
            out = self.upstream(self.command, self.path, body, self.fwd_headers(len(body)))
            if complete:
                self.upload_ended(path, q, out[0])
            return self.relay(*out)
        except UpstreamDown:
            count("upstream_down")
            self.note("upstream down: closed")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def upload_key(self, path):
        bucket, _, key = urllib.parse.unquote(path).lstrip("/").partition("/")
        return bucket, key

    def upload_ended(self, path, q, status):
        if status // 100 == 2 and "uploadId" in q:
            with uploads_lock:
                uploads.pop(self.upload_key(path) + (q["uploadId"][0],), None)

    def list_uploads(self, path, q):
        bucket = urllib.parse.unquote(path).strip("/")
        prefix = q.get("prefix", [""])[0]
        with uploads_lock:
            mine = sorted((k, i, t) for (b, k, i), t in uploads.items()
                          if b == bucket and k.startswith(prefix))
        body = ['<?xml version="1.0" encoding="UTF-8"?>',
                '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
                "<Bucket>%s</Bucket><IsTruncated>false</IsTruncated>" % xml_escape(bucket)]
        for k, i, t in mine:
            body.append("<Upload><Key>%s</Key><UploadId>%s</UploadId><Initiated>%s</Initiated>"
                        "</Upload>" % (xml_escape(k), xml_escape(i), t))
        body.append("</ListMultipartUploadsResult>")
        count("list_uploads")
        return self.reply(200, "".join(body).encode(), [("Content-Type", "application/xml")])

    def abort_upload(self, path, q):
        with uploads_lock:
            found = uploads.pop(self.upload_key(path) + (q["uploadId"][0],), None)
        if found is None:
            return self.reply(404, xml_error("NoSuchUpload", "no such upload"),
                              [("Content-Type", "application/xml")])
        count("aborted_uploads")
        return self.reply(204, b"")

    def upload_part_copy(self, path, q):
        src = urllib.parse.unquote(self.headers["x-amz-copy-source"]).lstrip("/")
        h = self.fwd_headers(0)
        for k in list(h):
            if k.lower().startswith("x-amz-copy-source"):
                del h[k]
        h["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        rng = self.headers.get("x-amz-copy-source-range")
        if rng:
            h["Range"] = rng
        st, reason, hdrs, data = self.upstream("GET", "/" + urllib.parse.quote(src), headers=h)
        if st not in (200, 206):
            return self.relay(st, reason, hdrs, data)
        h.pop("Range", None)
        h["Content-Length"] = str(len(data))
        st, reason, hdrs, out = self.upstream("PUT", self.path, data, h)
        if st != 200:
            return self.relay(st, reason, hdrs, out)
        etag = [v for k, v in hdrs if k.lower() == "etag"]
        count("upload_part_copy")
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult><LastModified>%s'
               '</LastModified><ETag>%s</ETag></CopyPartResult>' % (now, etag[0] if etag else ""))
        return self.reply(200, xml.encode(), [("Content-Type", "application/xml")])

    def do_GET(self):
        try:
            self.handle_one()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stall)
            self.note("client gone")
            self.close_connection = True

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", type=int, required=True)
    p.add_argument("--access-key", default="S3RVER")
    p.add_argument("--secret-key", default="S3RVER")
    p.add_argument("--no-conditional", dest="conditional", action="store_false")
    p.add_argument("--ignore-conditional-complete", action="store_true")
    p.add_argument("--log")
    p.add_argument("--ready-file")
    args = p.parse_args()
    srv = Server(("127.0.0.1", args.listen), Handler)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    srv.serve_forever()


if __name__ == "__main__":
    main()

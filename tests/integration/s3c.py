#!/usr/bin/python3
"""s3c.py - a small SigV4 S3 client (stdlib only) for tests against a real server.

Looks into a bucket from the outside, as the tests look into a file store's
directory:
    s3c.py get KEY OUT       object KEY's bytes into OUT (exit 1 when there is none)
    s3c.py list PREFIX       every key below PREFIX, one per line, sorted
    s3c.py put KEY FILE      store FILE's bytes as KEY
    s3c.py delete KEY        remove object KEY
    s3c.py mpu KEY FILE      begin a multipart upload of KEY, upload FILE as its
                             part 1 and leave it open (what a killed writer
                             leaves); prints the upload id
    s3c.py uploads PREFIX    the open multipart uploads below PREFIX: "KEY UPLOADID"
Environment: S3C_ENDPOINT (http://host:port), S3C_BUCKET, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY; path-style requests, region us-east-1.
Exit status: 0 ok, 1 not found or a server error (on stderr), 2 usage.
"""

import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse
import xml.etree.ElementTree as ET

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
REGION = "us-east-1"


def quote(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


def request(method, key="", query=None, body=b""):
    """One signed request; returns (status, body bytes)."""
    ep = urllib.parse.urlsplit(os.environ["S3C_ENDPOINT"])
    bucket = os.environ["S3C_BUCKET"]
    access, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    path = "/" + quote(bucket) + ("/" + quote(key, safe="-_.~/") if key else "/")
    q = sorted((query or {}).items())
    qs = "&".join(quote(k) + "=" + quote(v) for k, v in q)
    now = datetime.datetime.now(datetime.timezone.utc)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": ep.netloc, "x-amz-content-sha256": payload, "x-amz-date": amzdate}
    signed = ";".join(sorted(headers))
    canon = "\n".join([method, path, qs] + [f"{h}:{headers[h]}" for h in sorted(headers)]
                      + ["", signed, payload])
    scope = f"{day}/{REGION}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                     hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    headers["user-agent"] = "s3c.py"  # unsigned: tells its requests apart in a server's log
    conn = http.client.HTTPConnection(ep.hostname, ep.port, timeout=60)
    conn.request(method, path + ("?" + qs if qs else ""), body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def local(root, name):
    """Elements called name at any depth, with or without S3's namespace."""
    return [e for e in root.iter() if e.tag in (name, NS + name)]


def text(root, name):
    found = local(root, name)
    return found[0].text if found else None


def need(status, data, *ok):
    if status not in ok:
        sys.exit(f"s3c: HTTP {status}: {data[:300].decode(errors='replace')}")


def cmd_list(prefix):
    keys, token = [], None
    while True:
        # encoding-type=url: XML 1.0 cannot carry every byte a key may hold
        q = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
        if token:
            q["continuation-token"] = token
        st, data = request("GET", query=q)
        need(st, data, 200)
        root = ET.fromstring(data)
        enc = text(root, "EncodingType") == "url"
        keys += [urllib.parse.unquote_plus(text(c, "Key")) if enc else text(c, "Key")
                 for c in local(root, "Contents")]
        token = text(root, "NextContinuationToken")
        if text(root, "IsTruncated") != "true" or not token:
            break
    print("\n".join(sorted(keys)) if keys else "", end="\n" if keys else "")


def cmd_uploads(prefix):
    st, data = request("GET", query={"uploads": "", "prefix": prefix})
    need(st, data, 200)
    for u in local(ET.fromstring(data), "Upload"):
        print(text(u, "Key"), text(u, "UploadId"))


def main(argv):
    op, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if op == "get" and len(args) == 2:
        st, data = request("GET", args[0])
        if st == 404:
            return 1
        need(st, data, 200)
        os.makedirs(os.path.dirname(os.path.abspath(args[1])), exist_ok=True)
        with open(args[1], "wb") as f:
            f.write(data)
    elif op == "list" and len(args) == 1:
        cmd_list(args[0])
    elif op == "put" and len(args) == 2:
        with open(args[1], "rb") as f:
            need(*request("PUT", args[0], body=f.read()), 200)
    elif op == "delete" and len(args) == 1:
        need(*request("DELETE", args[0]), 204, 200)
    elif op == "mpu" and len(args) == 2:
        st, data = request("POST", args[0], query={"uploads": ""})
        need(st, data, 200)
        uid = text(ET.fromstring(data), "UploadId")
        with open(args[1], "rb") as f:
            need(*request("PUT", args[0], query={"partNumber": "1", "uploadId": uid},
                          body=f.read()), 200)
        print(uid)
    elif op == "uploads" and len(args) == 1:
        cmd_uploads(args[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

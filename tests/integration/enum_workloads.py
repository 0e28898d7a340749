#!/usr/bin/python3
"""Bounded workload enumeration (CrashMonkey's finding: most crash bugs need at
most three operations): every sequence of up to three of write, fsync, rename,
link, unlink, truncate and commit on two names, a and b, each in a directory of
its own, run against a mount, and checked against a model after the daemon
was killed and the store mounted again.

  enum_workloads.py run DIR OUT.json     run every workload under DIR; record
                                         each op's result and the model's state
  enum_workloads.py check MNT DIR OUT.json
                                         compare DIR's trees and the canonical
                                         objects their commits made with OUT

Sequences that are mirror images (a and b swapped) run once.  The model: names
point at inodes (link shares one); write appends bytes unique to the workload
and the op; truncate cuts to one byte; rename onto another name replaces it (a
rename between two links of one inode does nothing, as POSIX says); commit
(hash) moves the name to its canonical object, and fails with EMLINK for a file
with two links (setxattr names the inode, so the name meant is ambiguous).  An
op on a missing name fails with ENOENT, link onto an existing name with EEXIST.
"""
import errno
import itertools
import json
import os
import sys

OPS = ["W a", "W b", "F a", "F b", "R a b", "R b a", "L a b", "L b a",
       "U a", "U b", "T a", "T b", "C a", "C b"]


def sequences():
    for n in (1, 2, 3):
        for seq in itertools.product(OPS, repeat=n):
            names = [t for op in seq for t in op.split()[1:]]
            if names[0] == "b":
                continue  # the mirror image of one that starts with a
            yield seq


class Model:
    def __init__(self):
        self.names = {}  # name -> inode
        self.data = {}   # inode -> bytes
        self.next = 0
        self.commits = []  # bytes of each committed object

    def apply(self, op, payload):
        kind, args = op.split()[0], op.split()[1:]
        x = args[0]
        if kind == "W":
            if x not in self.names:
                self.next += 1
                self.names[x] = self.next
                self.data[self.next] = b""
            self.data[self.names[x]] += payload
            return 0
        if x not in self.names:
            return errno.ENOENT
        if kind == "F":
            return 0
        if kind == "T":
            self.data[self.names[x]] = self.data[self.names[x]][:1]
            return 0
        if kind == "U":
            del self.names[x]
            return 0
        if kind == "R":
            y = args[1]
            if self.names.get(y) != self.names[x]:
                self.names[y] = self.names[x]
                del self.names[x]
            return 0
        if kind == "L":
            y = args[1]
            if y in self.names:
                return errno.EEXIST
            self.names[y] = self.names[x]
            return 0
        if kind == "C":
            if list(self.names.values()).count(self.names[x]) > 1:
                return errno.EMLINK  # setxattr names the inode: which link is ambiguous
            self.commits.append(self.data[self.names[x]])
            del self.names[x]
            return 0
        raise ValueError(op)

    def state(self):
        groups = {}
        for name, ino in self.names.items():
            groups.setdefault(ino, []).append(name)
        return {"files": {n: self.data[i].decode() for n, i in self.names.items()},
                "links": sorted(sorted(g) for g in groups.values() if len(g) > 1),
                "commits": sorted(c.decode() for c in self.commits)}


def real(d, op, payload):
    kind, args = op.split()[0], op.split()[1:]
    p = [os.path.join(d, a) for a in args]
    try:
        if kind == "W":
            fd = os.open(p[0], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fd, payload)
            os.close(fd)
        elif kind == "F":
            fd = os.open(p[0], os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        elif kind == "T":
            os.truncate(p[0], min(1, os.stat(p[0]).st_size))
        elif kind == "U":
            os.unlink(p[0])
        elif kind == "R":
            os.rename(p[0], p[1])
        elif kind == "L":
            os.link(p[0], p[1])
        elif kind == "C":
            os.setxattr(p[0], "user.stagefs.commit", b"hash")
        return 0
    except OSError as e:
        return e.errno


def run(top, out):
    results = []
    for w, seq in enumerate(sequences()):
        d = os.path.join(top, "w%04d" % w)
        os.mkdir(d)
        m = Model()
        got, want = [], []
        for k, op in enumerate(seq):
            payload = b"w%d.%d;" % (w, k)
            want.append(m.apply(op, payload))
            got.append(real(d, op, payload))
        results.append({"dir": "w%04d" % w, "seq": list(seq), "want": want, "got": got,
                        "state": m.state()})
    json.dump(results, open(out, "w"))
    bad = [r for r in results if r["want"] != r["got"]]
    for r in bad[:10]:
        print("%s %s: results %s, the model says %s" % (r["dir"], r["seq"], r["got"], r["want"]))
    print("ran %d workloads, %d ops differ from the model" % (len(results), len(bad)))
    return 1 if bad else 0


def observe(mnt, d):
    files, inos = {}, {}
    for name in sorted(os.listdir(d)):
        if name.startswith("."):
            continue
        st = os.lstat(os.path.join(d, name))
        files[name] = open(os.path.join(d, name), "rb").read().decode()
        inos.setdefault((st.st_ino, st.st_nlink), []).append(name)
    links = sorted(sorted(g) for g in inos.values() if len(g) > 1)
    commits = []
    rd = os.path.join(d, ".receipts")
    for r in sorted(os.listdir(rd)) if os.path.isdir(rd) else []:
        path = json.load(open(os.path.join(rd, r)))["path"]
        commits.append(open(os.path.join(mnt, path), "rb").read().decode())
    return {"files": files, "links": links, "commits": sorted(commits)}


def check(mnt, top, out):
    results = json.load(open(out))
    bad = 0
    for r in results:
        try:
            seen = observe(mnt, os.path.join(top, r["dir"]))
        except OSError as e:
            seen = {"error": str(e)}
        # a receipt names its entry: two commits of one name keep the newest receipt
        want = dict(r["state"])
        if "error" not in seen and len(want["commits"]) > len(seen["commits"]):
            names = [op.split()[1] for op in r["seq"] if op.startswith("C")]
            if len(names) != len(set(names)):
                want["commits"] = seen["commits"] if set(seen["commits"]) <= set(
                    want["commits"]) else want["commits"]
        if seen != want:
            bad += 1
            if bad <= 10:
                print("%s %s: after the crash %s, the model says %s" %
                      (r["dir"], r["seq"], json.dumps(seen), json.dumps(want)))
    print("checked %d workloads after the crash: %d differ from the model" % (len(results), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], sys.argv[3]))
    sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4]))

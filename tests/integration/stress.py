#!/usr/bin/python3
"""stress.py - a model-based random exerciser of a stagefs mount (mountpoint-s3's
reference-model idea).

    stress.py MOUNT STAGING_DIR SHADOW_DIR [--procs N] [--ops N] [--seed S]

Each of N processes (one seed each: S, S+1, ...) runs a random sequence of
open / pwrite / ftruncate / close / truncate / rename / link / unlink / mkdir /
rmdir / commit operations on its own directory below STAGING_DIR (a
staging/<schema>/<table>/ directory of the mount), applies the same operation to
a shadow directory on the native disk (SHADOW_DIR) and, after every step,
compares:
  - the result of the call (its errno, or success);
  - the two trees (names, types, sizes, link counts, modes, bytes), .receipts aside;
  - the model of the canonical store: every object a commit made (its receipt's
    path) still reads back as the bytes the entry held when it was committed.
A commit is modelled as: the entry leaves the shadow tree (its bytes go into the
model) when the mount's commit succeeds; it must succeed for a closed regular
file with one name and for a directory holding only directories and regular
files, at least one (every handle is closed before a commit); a file with
other hard links fails with EMLINK, a directory without a file with EINVAL,
a missing entry with ENOENT.

A failure prints the seed, the step and what differed, then shrinks the
sequence (dropping operations while the replay, on fresh directories, still
fails) and prints the shortest one it found.  Exit status 0 when every process
ran clean, 1 otherwise.  The last line is "stress: N passed, N failed".
"""

import argparse
import errno
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import stat
import sys

FILES = ["a", "b", "c", "d/e", "d/f", "g/h"]
DIRS = ["d", "g", "d/i"]
COMMIT = "user.stagefs.commit"
OPS = ["open", "open", "pwrite", "pwrite", "pwrite", "ftruncate", "close", "truncate",
       "rename", "link", "unlink", "mkdir", "mkdir", "rmdir", "commit"]


def gen(rng, n):
    """A random sequence of n operations (plain tuples, replayable anywhere)."""
    out = []
    for _ in range(n):
        op = rng.choice(OPS)
        if op == "open":
            out.append((op, rng.choice(FILES), rng.randrange(4)))
        elif op == "pwrite":
            out.append((op, rng.randrange(4), rng.randrange(0, 200000),
                        rng.randrange(1, 70000), rng.randrange(256)))
        elif op == "ftruncate":
            out.append((op, rng.randrange(4), rng.randrange(0, 150000)))
        elif op == "close":
            out.append((op, rng.randrange(4)))
        elif op == "truncate":
            out.append((op, rng.choice(FILES), rng.randrange(0, 150000)))
        elif op in ("rename", "link"):
            out.append((op, rng.choice(FILES + DIRS), rng.choice(FILES + DIRS)))
        elif op == "unlink":
            out.append((op, rng.choice(FILES)))
        elif op in ("mkdir", "rmdir"):
            out.append((op, rng.choice(DIRS)))
        else:
            out.append((op, rng.choice(FILES + DIRS), rng.randrange(1 << 30)))
    return out


def err_of(fn, *a):
    try:
        fn(*a)
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def tree(root):
    """{relpath: (type, size, nlink, mode, md5)} of everything below root but .receipts."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x != ".receipts")
        for name in dirs + sorted(files):
            p = os.path.join(d, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    md5 = hashlib.md5(f.read()).hexdigest()
                out[rel] = ("f", st.st_size, st.st_nlink, stat.S_IMODE(st.st_mode), md5)
            else:
                out[rel] = ("d" if stat.S_ISDIR(st.st_mode) else "?", 0, 0,
                            stat.S_IMODE(st.st_mode), "")
    return out


def contents(path):
    """The bytes a commit of path must preserve: {relpath: md5} (a file: {"": md5})."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {"": hashlib.md5(f.read()).hexdigest()}
    return {rel: v[4] for rel, v in tree(path).items() if v[0] == "f"}


def committable(path):
    e = err_of(os.lstat, path)  # ENOENT, ENOTDIR: as the lookup fails
    if e != "OK":
        return e
    if os.path.isfile(path):  # a file with other names is ambiguous (a tree's get copies)
        return "EMLINK" if os.lstat(path).st_nlink > 1 else "OK"
    t = tree(path).values()  # only files and directories, and at least one file
    return "OK" if all(v[0] in "fd" for v in t) and any(v[0] == "f" for v in t) else "EINVAL"


class Side:
    """One tree (the mount's or the shadow's) and its open handles."""

    def __init__(self, root):
        self.root = root
        self.fds = [None] * 4

    def p(self, rel):
        return os.path.join(self.root, rel)

    def close_all(self):
        for i, fd in enumerate(self.fds):
            if fd is not None:
                os.close(fd)
                self.fds[i] = None

    def apply(self, op):
        k = op[0]
        if k == "open":
            _, rel, slot = op
            if self.fds[slot] is not None:
                os.close(self.fds[slot])
                self.fds[slot] = None

            def o():
                self.fds[slot] = os.open(self.p(rel), os.O_RDWR | os.O_CREAT, 0o644)
            return err_of(o)
        if k in ("pwrite", "ftruncate", "close"):
            fd = self.fds[op[1]]
            if fd is None:
                return "EBADF"
            if k == "pwrite":
                data = bytes([op[4]]) * op[3]
                return err_of(os.pwrite, fd, data, op[2])
            if k == "ftruncate":
                return err_of(os.ftruncate, fd, op[2])
            self.fds[op[1]] = None
            return err_of(os.close, fd)
        if k == "truncate":
            return err_of(os.truncate, self.p(op[1]), op[2])
        if k == "rename":
            return err_of(os.rename, self.p(op[1]), self.p(op[2]))
        if k == "link":
            return err_of(os.link, self.p(op[1]), self.p(op[2]))
        if k == "unlink":
            return err_of(os.unlink, self.p(op[1]))
        if k == "mkdir":
            return err_of(os.mkdir, self.p(op[1]), 0o755)
        if k == "rmdir":
            return err_of(os.rmdir, self.p(op[1]))
        raise ValueError(k)


def run(ops, mnt, live, shadow, tag):
    """Replay ops on fresh directories; None when clean, else (step, what differed)."""
    for d in (live, shadow):
        os.makedirs(d)
    m, s = Side(live), Side(shadow)
    canon = {}  # canonical path -> {relpath: md5}
    try:
        for i, op in enumerate(ops):
            if op[0] == "commit":
                m.close_all()
                s.close_all()
                rel, n = op[1], op[2]
                want = committable(s.p(rel))
                before = contents(s.p(rel)) if want == "OK" else None
                if os.path.isdir(s.p(rel)):
                    value = json.dumps({"field": "raw", "key": {"run": tag, "n": n}})
                else:
                    value = "hash"
                got = err_of(os.setxattr, m.p(rel), COMMIT, value.encode())
                if got != want:
                    return i, f"commit {rel}: mount {got}, model {want}"
                if got == "OK":
                    rdir, name = os.path.split(m.p(rel))
                    with open(os.path.join(rdir, ".receipts", name + ".json")) as f:
                        canon[json.load(f)["path"]] = before
                    if os.path.isdir(s.p(rel)):
                        shutil.rmtree(s.p(rel))
                    else:
                        os.unlink(s.p(rel))
            else:
                a, b = m.apply(op), s.apply(op)
                if a != b:
                    return i, f"{op}: mount {a}, native {b}"
            tm, ts = tree(live), tree(shadow)
            if tm != ts:
                diff = sorted(set(tm.items()) ^ set(ts.items()))
                return i, f"after {op}: trees differ: {diff[:6]}"
            for cpath, want in canon.items():
                if contents(os.path.join(mnt, cpath)) != want:
                    return i, f"after {op}: canonical {cpath} changed"
        return None
    finally:
        m.close_all()
        s.close_all()


def shrink(ops, mnt, base, shadow, tag, budget):
    """Drop chunks, then single operations, while the replay still fails (budget replays)."""
    n = [0]

    def fails(seq):
        if n[0] >= budget:
            return False
        n[0] += 1
        t = f"{tag}s{n[0]}"
        return run(seq, mnt, f"{base}/{t}", f"{shadow}/{t}", t) is not None

    chunk = max(1, len(ops) // 2)
    while chunk >= 1:
        i, changed = 0, False
        while i < len(ops):
            cand = ops[:i] + ops[i + chunk:]
            if cand and fails(cand):
                ops, changed = cand, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return ops


def worker(args, seed, q):
    try:
        check(args, seed, q)
    except Exception as e:  # a crash of the exerciser itself is a failure too
        q.put((seed, f"seed {seed}: the exerciser failed: {e!r}"))


def check(args, seed, q):
    rng = random.Random(seed)
    ops = gen(rng, args.ops)
    tag = f"p{seed}"
    r = run(ops, args.mount, f"{args.staging}/{tag}", f"{args.shadow}/{tag}", tag)
    if r is None:
        q.put((seed, None))
        return
    step, what = r
    # said at once: a shrink of thousands of operations may take long (--shrink-runs)
    print(f"found: seed {seed}: step {step}: {what}", file=sys.stderr, flush=True)
    short = shrink(ops[:step + 1], args.mount, args.staging, args.shadow, tag, args.shrink_runs)
    q.put((seed, f"seed {seed}: step {step}: {what}\n  shortest failing sequence "
                 f"({len(short)} of {step + 1} operations):\n    " +
           "\n    ".join(repr(o) for o in short)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mount")
    ap.add_argument("staging")
    ap.add_argument("shadow")
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--ops", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shrink-runs", type=int, default=200,
                    help="replays a failing sequence's shrink may take")
    args = ap.parse_args()
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(args, args.seed + i, q))
          for i in range(args.procs)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    bad = [r for _, r in sorted(res) if r]
    for r in bad:
        print(r)
    ok = args.procs - len(bad)
    print(f"stress: {args.procs} processes x {args.ops} operations, seeds {args.seed}.."
          f"{args.seed + args.procs - 1}")
    print(f"stress: {ok} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""DANDI zarr checksum of a directory tree, written independently of the daemon.

    dandi_checksum.py DIR            print the checksum of DIR
    dandi_checksum.py --selftest V   check against tests/vectors/zarr_checksum.json

File digest = md5 hex of its bytes.  A directory's manifest is
{"directories":[...],"files":[...]}, each sorted by name, entries
{"digest","name","size"}, serialized with json.dumps(separators=(',',':'));
its digest = md5hex(manifest)-<recursive file count>--<recursive bytes>.
Directories holding no file (recursively) are invisible.
"""
import hashlib
import json
import os
import sys


def digest_tree(tree):
    """tree: {name: bytes | subtree}.  Returns (digest, count, size)."""
    files, dirs = [], []
    count = size = 0
    for name, v in tree.items():
        if isinstance(v, dict):
            d, c, s = digest_tree(v)
            if c == 0:
                continue
            dirs.append({"digest": d, "name": name, "size": s})
            count += c
            size += s
        else:
            files.append({"digest": hashlib.md5(v).hexdigest(), "name": name, "size": len(v)})
            count += 1
            size += len(v)
    files.sort(key=lambda e: e["name"])
    dirs.sort(key=lambda e: e["name"])
    manifest = json.dumps({"directories": dirs, "files": files}, separators=(",", ":"))
    return "%s-%d--%d" % (hashlib.md5(manifest.encode()).hexdigest(), count, size), count, size


def load_dir(path):
    tree = {}
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if os.path.isdir(p) and not os.path.islink(p):
            tree[name] = load_dir(p)
        else:
            with open(p, "rb") as f:
                tree[name] = f.read()
    return tree


def from_flat(files):
    tree = {}
    for rel, content in files.items():
        parts = rel.split("/")
        t = tree
        for p in parts[:-1]:
            t = t.setdefault(p, {})
        t[parts[-1]] = content.encode("utf-8")
    return tree


if __name__ == "__main__":
    if sys.argv[1] == "--selftest":
        cases = json.load(open(sys.argv[2]))["cases"]
        bad = [c for c in cases if digest_tree(from_flat(c["files"]))[0] != c["checksum"]]
        print("selftest: %d cases, %d wrong" % (len(cases), len(bad)))
        sys.exit(1 if bad else 0)
    print(digest_tree(load_dir(sys.argv[1]))[0])

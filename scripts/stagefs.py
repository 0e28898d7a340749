"""stagefs - commit, status, publish and snapshots of a stagefs mount from Python.

Standard library only (Debian's python3); `make install` puts this module where
Debian's python3 finds it.  A commit is one setxattr on the staged entry, so
h5py and zarr scripts need nothing else:

    import stagefs
    receipt = stagefs.commit("/mnt/lab/staging/lab/Recording/run1.h5",
                             field="raw", key={"subject_id": 1, "session_date": date(2026, 1, 5)})
    receipt["path"]     # '_schema/lab/Recording/subject_id=1/session_date=2026-01-05/raw_....h5'

Key values are encoded as DataJoint encodes primary-key values in object paths
(str() of the value): int, float and bool as JSON numbers and booleans;
datetime.date, datetime.datetime, uuid.UUID, decimal.Decimal and str as strings
("2026-01-05", "2026-01-05 10:30:00", "0f2c...", "1.50").

DataJoint table names: a DataJoint table's objects live under its SQL table name
(`recording` for a Manual table Recording, `_recording` Imported, `__recording`
Computed, `#recording` Lookup, `master__part` Part).  table_name() derives it
from a DataJoint table class or instance (its `table_name`) or takes a string as
given; insert() commits with that name as the commit's "table", so the object
sits where DataJoint itself would put it, and returns the row to insert.

Errors are OSError (StagefsError) with the errno of the commit and the reason
the mount gives in user.stagefs.status.  The stagefs binary (STAGEFS, else
`stagefs` on PATH) is used only for publish() and snapshots().
"""

import datetime
import decimal
import errno as _errno
import json
import os
import shutil
import subprocess
import time
import uuid

__all__ = ["StagefsError", "commit", "status", "wait", "publish", "snapshots", "table_name",
           "insert", "key_value", "RECEIPT_FIELDS"]

COMMIT = "user.stagefs.commit"
STATUS = "user.stagefs.status"
# what DataJoint's <object@store> codec keeps of a stored object
RECEIPT_FIELDS = ("path", "store", "size", "ext", "is_dir", "item_count", "timestamp")


class StagefsError(OSError):
    """A commit, status or command failed: errno, and the mount's reason."""


def key_value(v):
    """A primary-key value as the commit's JSON carries it (DataJoint's str() for the rest)."""
    if isinstance(v, bool) or isinstance(v, (int, float, str)):
        return v
    if isinstance(v, datetime.datetime):
        return str(v)  # "2026-01-05 10:30:00", as DataJoint's str() of a datetime
    if isinstance(v, (datetime.date, uuid.UUID, decimal.Decimal)):
        return str(v)
    raise TypeError(f"stagefs: a key value of type {type(v).__name__} has no DataJoint encoding")


def table_name(table):
    """The SQL table name of a DataJoint table (class or instance), or a string as given."""
    if isinstance(table, str):
        return table
    name = getattr(table, "table_name", None)
    if isinstance(name, str) and name:
        return name
    raise TypeError("stagefs: table must be a DataJoint table or its SQL table name")


def _receipt_path(path):
    d, name = os.path.split(os.path.abspath(path))
    return os.path.join(d, ".receipts", name + ".json")


def _reason(path):
    try:
        return os.getxattr(path, STATUS).decode(errors="replace")
    except OSError:
        return ""


def status(path):
    """'staged', 'uploading', 'queued', 'committing <done>/<total>', 'error: <why>', ..."""
    return os.getxattr(path, STATUS).decode(errors="replace")


def commit(path, hash=False, field=None, key=None, ext=None, async_=False, table=None,
           token=None):
    """Commit the staged file or directory at path; returns its receipt (a dict).

    hash=True: content-addressed (files).  Else field and key (a dict, in path
    order) make the schema-addressed path; ext None takes the entry name's
    suffix, "" none.  table overrides the <table> of the staging path (a name,
    or a DataJoint table: see table_name).  async_=True returns once the commit
    is queued: {"queued": True, "staging": path}; wait(path) then gives the
    receipt.
    """
    if hash:
        if field is not None or key:
            raise ValueError("stagefs: a hash commit takes no field or key")
        value = {"addressing": "hash"}
    else:
        if not field or not key:
            raise ValueError("stagefs: a schema commit needs field and key")
        value = {"addressing": "schema", "field": field,
                 "key": {k: key_value(v) for k, v in key.items()}}
        if ext is not None:
            value["ext"] = ext
        if table is not None:
            value["table"] = table_name(table)
        if token is not None:
            value["token"] = token
    if async_:
        value["async"] = True
    receipt = _receipt_path(path)
    try:
        os.setxattr(path, COMMIT, json.dumps(value).encode())
    except OSError as e:
        why = _reason(path) if e.errno != _errno.ENOENT else ""
        raise StagefsError(e.errno, f"stagefs: commit {path}: {os.strerror(e.errno)}"
                           + (f" ({why})" if why else "")) from None
    if async_:
        return {"queued": True, "staging": path}
    with open(receipt) as f:
        return json.load(f)


def wait(path, timeout=None, poll=0.05):
    """The receipt of an async commit of path, once done; StagefsError when it failed."""
    receipt, t0 = _receipt_path(path), time.monotonic()
    while True:
        try:
            with open(receipt) as f:
                return json.load(f)
        except FileNotFoundError:
            pass
        st = _reason(path)
        if st.startswith("error: "):
            raise StagefsError(_errno.EIO, f"stagefs: commit {path}: {st[7:]}")
        if timeout is not None and time.monotonic() - t0 > timeout:
            raise StagefsError(_errno.ETIMEDOUT, f"stagefs: commit {path}: still {st or 'queued'}")
        time.sleep(poll)


def insert(table, key, path, field, ext=None):
    """Commit path for DataJoint table's field; returns the row dict to insert.

    The object goes under the table's SQL name (table_name), with key's
    attributes in the order given; the row is key plus {field: the receipt's
    DataJoint fields} (RECEIPT_FIELDS), what an <object@store> attribute holds.
    """
    r = commit(path, field=field, key=key, ext=ext, table=table_name(table))
    row = dict(key)
    row[field] = {k: r[k] for k in RECEIPT_FIELDS}
    return row


def _binary():
    b = os.environ.get("STAGEFS") or shutil.which("stagefs")
    if not b:
        raise StagefsError(_errno.ENOENT, "stagefs: the stagefs command is not on PATH "
                           "(or set STAGEFS)")
    return b


def _run(args):
    p = subprocess.run([_binary()] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise StagefsError(_errno.EIO, (p.stderr.strip() or p.stdout.strip()
                                        or f"stagefs {args[0]}: exit {p.returncode}"))
    return json.loads(p.stdout)


def publish(mountpoint, name, prefixes=(), message=None):
    """Publish the canonical objects (all, or those under each prefix) as snapshot name."""
    args = ["publish", mountpoint, name, "--json"]
    for p in prefixes:
        args += ["--prefix", p]
    if message is not None:
        args += ["--message", message]
    return _run(args)


def snapshots(where, name=None):
    """The published snapshots of a mount or SOURCE (a list), or one of them (name)."""
    return _run(["snapshots", "show", name, "--json", where] if name else
                ["snapshots", "list", "--json", where])

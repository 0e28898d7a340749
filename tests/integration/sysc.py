#!/usr/bin/python3
"""One system call per run, for the integration tests (tests/integration/lib.sh).

usage: sysc.py OP ARGS...
Prints "OK" (or the value for get-like ops) when the call succeeds, otherwise
the errno name (EEXIST, EROFS, ...).  Exit status 0 either way; 2 on bad usage.
"""
import errno
import fcntl
import os
import stat
import sys
import termios


def run(op, a):
    if op == "create":          # O_CREAT|O_WRONLY
        os.close(os.open(a[0], os.O_CREAT | os.O_WRONLY, 0o644))
    elif op == "create_excl":   # O_CREAT|O_EXCL|O_WRONLY
        os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op == "open_r":
        os.close(os.open(a[0], os.O_RDONLY))
    elif op == "open_w":
        os.close(os.open(a[0], os.O_WRONLY))
    elif op == "open_rw":
        os.close(os.open(a[0], os.O_RDWR))
    elif op == "open_trunc":
        os.close(os.open(a[0], os.O_WRONLY | os.O_TRUNC))
    elif op == "open_append":
        os.close(os.open(a[0], os.O_WRONLY | os.O_APPEND))
    elif op == "write":         # write DATA at offset 0 without truncating
        fd = os.open(a[0], os.O_WRONLY)
        try:
            os.write(fd, a[1].encode())
        finally:
            os.close(fd)
    elif op == "write_file":    # write_file PATH SRC: SRC's bytes into PATH (created if missing,
        # not truncated); an error of close() (an upload that failed) is the answer too
        fd = os.open(a[0], os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            with open(a[1], "rb") as f:
                os.write(fd, f.read())
        finally:
            os.close(fd)
    elif op == "fsync":         # open PATH read-write, fsync, close
        fd = os.open(a[0], os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    elif op == "read":
        with open(a[0], "rb") as f:
            f.read()
    elif op == "mkdir":
        os.mkdir(a[0])
    elif op == "rmdir":
        os.rmdir(a[0])
    elif op == "unlink":
        os.unlink(a[0])
    elif op == "rename":
        os.rename(a[0], a[1])
    elif op == "rename_noreplace":
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        r = libc.renameat2(-100, a[0].encode(), -100, a[1].encode(), 1)
        if r != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    elif op == "link":
        os.link(a[0], a[1])
    elif op == "symlink":       # symlink TARGET LINKPATH
        os.symlink(a[0], a[1])
    elif op == "readlink":
        return os.readlink(a[0])
    elif op == "mknod":         # mknod PATH fifo|reg|chr
        kind = {"fifo": stat.S_IFIFO, "reg": stat.S_IFREG, "chr": stat.S_IFCHR}[a[1]]
        os.mknod(a[0], kind | 0o644, os.makedev(1, 3) if a[1] == "chr" else 0)
    elif op == "setxattr":
        os.setxattr(a[0], a[1], a[2].encode())
    elif op == "lsetxattr":     # does not follow a symlink
        os.setxattr(a[0], a[1], a[2].encode(), follow_symlinks=False)
    elif op == "getxattr":
        return os.getxattr(a[0], a[1]).decode("utf-8", "replace")
    elif op == "listxattr":
        return " ".join(sorted(os.listxattr(a[0])))
    elif op == "removexattr":
        os.removexattr(a[0], a[1])
    elif op == "truncate":
        os.truncate(a[0], int(a[1]))
    elif op == "chmod":
        os.chmod(a[0], int(a[1], 8))
    elif op == "chown":
        os.chown(a[0], int(a[1]), int(a[2]))
    elif op == "utime":
        os.utime(a[0], (1000000000, 1000000000))
    elif op == "ioctl_tcgets":
        fd = os.open(a[0], os.O_RDONLY)
        try:
            fcntl.ioctl(fd, termios.TCGETS, bytes(64))
        finally:
            os.close(fd)
    elif op == "opendir":
        os.listdir(a[0])
    else:
        print("sysc.py: unknown op %r" % op, file=sys.stderr)
        sys.exit(2)
    return "OK"


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        out = run(sys.argv[1], sys.argv[2:])
    except OSError as e:
        out = errno.errorcode.get(e.errno, str(e.errno))
    print(out)


main()

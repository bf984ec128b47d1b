"""libnbd's Python binding (Debian's python3-libnbd, for /usr/bin/python3):
the import, with a clear line when it is missing, and a connection."""
import sys

try:
    import nbd  # noqa: F401 (the tests use nbd.NBD's methods through connect())
except ImportError:
    print("python3-libnbd is missing (scripts/install-deps.sh installs it)", file=sys.stderr)
    sys.exit(1)


def connect(url):
    h = nbd.NBD()
    h.connect_uri(url)
    return h


def alive(h):
    """Whether a connection still serves: a read of its first sector."""
    try:
        h.pread(512, 0)
        return True
    except nbd.Error:
        return False

"""An iSCSI initiator for the tests: libiscsi (Debian's libiscsi7, the
library behind iscsi-test-cu and qemu's iscsi:// driver) through ctypes,
one session per object, SCSI commands sent synchronously. A command's
answer is (status, sense, data): sense is (key, ASC, ASCQ) for a CHECK
CONDITION; status None when the session failed (the connection is gone:
no reconnection, the caller picks another path, as a multipath host does).
"""
import ctypes as C

GOOD, CHECK_CONDITION = 0, 2

_lib = C.CDLL("libiscsi.so.7")
_lib.iscsi_create_context.restype = C.c_void_p
_lib.iscsi_create_context.argtypes = [C.c_char_p]
_lib.iscsi_set_targetname.argtypes = [C.c_void_p, C.c_char_p]
_lib.iscsi_set_session_type.argtypes = [C.c_void_p, C.c_int]
_lib.iscsi_set_noautoreconnect.argtypes = [C.c_void_p, C.c_int]
_lib.iscsi_set_timeout.argtypes = [C.c_void_p, C.c_int]
_lib.iscsi_full_connect_sync.argtypes = [C.c_void_p, C.c_char_p, C.c_int]
_lib.iscsi_get_error.restype = C.c_char_p
_lib.iscsi_get_error.argtypes = [C.c_void_p]
_lib.iscsi_disconnect.argtypes = [C.c_void_p]
_lib.iscsi_logout_sync.argtypes = [C.c_void_p]
_lib.iscsi_destroy_context.argtypes = [C.c_void_p]
_lib.iscsi_task_mgmt_lun_reset_sync.argtypes = [C.c_void_p, C.c_uint32]


class _Task(C.Structure):
    # struct scsi_task up to its Data-In, as GCC lays it out on x86-64
    # (struct scsi_sense's bit fields are taken as raw bytes: ctypes would
    # lay them out otherwise).
    _fields_ = [("status", C.c_int), ("cdb_size", C.c_int), ("xfer_dir", C.c_int),
                ("expxferlen", C.c_int), ("cdb", C.c_ubyte * 16), ("residual_status", C.c_int),
                ("residual", C.c_size_t), ("sense_error_type", C.c_ubyte), ("sense_key", C.c_int),
                ("sense_ascq", C.c_int), ("sense_rest", C.c_ubyte * 4),
                ("datain_size", C.c_int), ("datain_data", C.c_void_p)]


class _Data(C.Structure):
    _fields_ = [("size", C.c_size_t), ("data", C.c_void_p)]


_lib.scsi_create_task.restype = C.POINTER(_Task)
_lib.scsi_create_task.argtypes = [C.c_int, C.c_char_p, C.c_int, C.c_int]
_lib.iscsi_scsi_command_sync.restype = C.POINTER(_Task)
_lib.iscsi_scsi_command_sync.argtypes = [C.c_void_p, C.c_int, C.POINTER(_Task),
                                         C.POINTER(_Data)]
_lib.scsi_free_scsi_task.argtypes = [C.POINTER(_Task)]


class IscsiSession:
    def __init__(self, portal, target, lun, initiator="iqn.2026-12.test:libiscsi", timeout=10):
        self.lun = lun
        self.portal = portal
        self.attentions = 0  # ASYMMETRIC ACCESS STATE CHANGED met
        self.ctx = _lib.iscsi_create_context(initiator.encode())
        if not self.ctx:
            raise AssertionError("iscsi_create_context failed")
        _lib.iscsi_set_targetname(self.ctx, target.encode())
        _lib.iscsi_set_session_type(self.ctx, 2)  # normal
        _lib.iscsi_set_noautoreconnect(self.ctx, 1)
        _lib.iscsi_set_timeout(self.ctx, timeout)
        if _lib.iscsi_full_connect_sync(self.ctx, portal.encode(), lun) != 0:
            why = _lib.iscsi_get_error(self.ctx).decode(errors="replace")
            _lib.iscsi_destroy_context(self.ctx)
            self.ctx = None
            raise ConnectionError(f"login to {portal} failed: {why}")

    def command(self, cdb, data_out=None, data_in=0):
        if not self.ctx:
            return None, None, b""
        direction = 2 if data_out is not None else 1 if data_in else 0
        length = len(data_out) if data_out is not None else data_in
        task = _lib.scsi_create_task(len(cdb), bytes(cdb), direction, length)
        if not task:
            raise AssertionError("scsi_create_task failed")
        out = None
        if data_out is not None:
            buf = C.create_string_buffer(bytes(data_out), len(data_out))
            out = _Data(len(data_out), C.cast(buf, C.c_void_p))
        done = _lib.iscsi_scsi_command_sync(self.ctx, self.lun, task,
                                            C.byref(out) if out is not None else None)
        if not done:
            _lib.scsi_free_scsi_task(task)
            return None, None, b""
        t = done.contents
        status = t.status if t.status in (0, 2, 8, 0x18, 0x28, 0x40) else None
        sense = None
        if t.status == CHECK_CONDITION:
            sense = (t.sense_key, t.sense_ascq >> 8 & 0xff, t.sense_ascq & 0xff)
            if sense == ACCESS_STATE_CHANGED:
                self.attentions += 1
        data = C.string_at(t.datain_data, t.datain_size) if t.datain_data and t.datain_size > 0 \
            else b""
        _lib.scsi_free_scsi_task(done)
        return status, sense, data

    def read(self, lba, blocks):
        cdb = bytes([0x28, 0]) + lba.to_bytes(4, "big") + bytes([0]) + blocks.to_bytes(2, "big") \
            + bytes(1)
        return self.command(cdb, data_in=blocks * 512)

    def write(self, lba, data):
        blocks = len(data) // 512
        cdb = bytes([0x2a, 0]) + lba.to_bytes(4, "big") + bytes([0]) + blocks.to_bytes(2, "big") \
            + bytes(1)
        return self.command(cdb, data_out=data)

    def port_groups(self):
        """REPORT TARGET PORT GROUPS: {group id: (state, preferred)}, or None
        if the command failed."""
        cdb = bytes([0xa3, 0x0a, 0, 0, 0, 0]) + (4096).to_bytes(4, "big") + bytes(2)
        status, sense, data = self.command(cdb, data_in=4096)
        if status != GOOD:
            return None
        groups, at = {}, 4
        while at + 8 <= len(data):
            ports = data[at + 7]
            groups[int.from_bytes(data[at + 2:at + 4], "big")] = (data[at] & 0x0f,
                                                                  bool(data[at] & 0x80))
            at += 8 + 4 * ports
        return groups

    def lun_reset(self):
        """LOGICAL UNIT RESET of the session's LUN: 0 once the target
        answered it (libiscsi does not say which response), -1 if not."""
        return _lib.iscsi_task_mgmt_lun_reset_sync(self.ctx, self.lun) if self.ctx else -1

    def logout(self):
        """Logs out (the target answers once it has ended the session's
        business), then lets the context go: 0 when the target answered."""
        rc = _lib.iscsi_logout_sync(self.ctx) if self.ctx else -1
        if self.ctx:
            _lib.iscsi_destroy_context(self.ctx)
            self.ctx = None
        return rc

    def close(self):
        if self.ctx:
            _lib.iscsi_disconnect(self.ctx)
            _lib.iscsi_destroy_context(self.ctx)
            self.ctx = None


# Asymmetric access states (REPORT TARGET PORT GROUPS).
OPTIMIZED, NON_OPTIMIZED, UNAVAILABLE, TRANSITIONING = 0x0, 0x1, 0x3, 0xf
ACCESS_STATE_CHANGED = (0x06, 0x2a, 0x06)

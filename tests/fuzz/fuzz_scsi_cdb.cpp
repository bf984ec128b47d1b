// Fuzz target: a SCSI command descriptor block from a host, planned for a
// logical unit whose size and mode also come from the input. Whatever the
// CDB, a request for the stack lies inside the vdisk, a write is never
// planned for a read-only unit, and an answer made here is never longer
// than the CDB's allocation length allows nor than 64 KiB.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "io/scsi/scsi_commands.hpp"

using namespace sve;
using namespace sve::scsi;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 16 + 9) return 0;
  LogicalUnit lu;
  uint64_t blocks = 0;
  std::memcpy(&blocks, data + 16, 8);
  lu.blocks = (blocks >> (data[24] & 63)) >> 9;  // (a vdisk holds less than 2^64 bytes)
  lu.read_only = data[24] & 0x40;
  lu.thin = data[24] & 0x80;
  lu.serial = "600507680c800123";
  Plan p = plan(data, 16, lu);
  if (p.io) {
    if (p.op == IoOp::write && lu.read_only) std::abort();
    uint64_t end = p.offset + p.length;
    if (p.op != IoOp::flush &&
        (end < p.offset || end > lu.blocks * kBlockBytes || p.length == 0 ||
         p.length > uint64_t{kMaxTransferBlocks} * kBlockBytes))
      std::abort();
    if (p.data_out != (p.op == IoOp::write ? p.length : 0)) std::abort();
  }
  if (p.data_in.size() > 65536) std::abort();
  if (p.status != Status::good && (p.io || !p.data_in.empty())) std::abort();
  return 0;
}

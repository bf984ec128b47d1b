// Logical block provisioning (SBC-3 4.7, 5.17, 5.28, 5.41-5.43): UNMAP,
// WRITE SAME with and without UNMAP, GET LBA STATUS. Unmapping is the
// stack's write_zeroes that may deallocate: a thin vdisk frees the grains
// it covers whole and zeroes the rest in place, so unmapped blocks always
// read as zeros (LBPRZ) and nothing is left half-done by a partial grain.
#include <algorithm>

#include "io/scsi/scsi_internal.hpp"

namespace sve::scsi {
namespace {

using namespace bytes;

// The most one GET LBA STATUS asks the stack about (extents count bytes
// in 32 bits).
constexpr uint64_t kStatusSpanBytes = 1ull << 30;

}  // namespace

Plan plan_write_same(const uint8_t* cdb, bool sixteen, const LogicalUnit& lu) {
  const uint8_t flags = cdb[1];
  const bool anchor = flags & 0x10, unmap = flags & 0x08;
  const bool ndob = sixteen && (flags & 0x01);  // no Data-Out: zeros
  // WRPROTECT (no protection information), PBDATA and LBDATA (no
  // per-block stamping), the ten-byte form's obsolete bit 0, and ANCHOR
  // (no anchored state) are refused.
  if ((flags & 0xe0) || (flags & 0x06) || (!sixteen && (flags & 0x01)) || anchor)
    return check(sense::invalid_field_in_cdb);
  const uint64_t lba = sixteen ? be64(cdb + 2) : be32(cdb + 2);
  const uint64_t blocks = sixteen ? be32(cdb + 10) : be16(cdb + 7);
  if (!in_range(lba, blocks, lu)) return check(sense::lba_out_of_range);
  // 0 blocks would mean "to the end of the unit": refused (WSNZ).
  if (blocks == 0 || blocks > kMaxWriteSameBlocks) return check(sense::invalid_field_in_cdb);
  if (lu.read_only) return check(sense::write_protected);
  if (unmap && !lu.thin) return check(sense::invalid_field_in_cdb);  // no LBPWS
  Plan p;
  p.io = true;
  p.op = IoOp::write;
  p.offset = lba * kBlockBytes;
  p.length = blocks * kBlockBytes;
  p.flow = Flow::write_same;
  p.unmap = unmap;
  p.data_out = ndob ? 0 : kBlockBytes;
  return p;
}

Plan plan_unmap(const uint8_t* cdb, const LogicalUnit& lu) {
  if (!lu.thin) return check(sense::invalid_opcode);  // LBPME is clear
  if (cdb[1] & 0x01) return check(sense::invalid_field_in_cdb);  // ANCHOR
  const uint32_t length = be16(cdb + 7);
  if (length == 0) return Plan{};  // nothing to unmap
  if (length < 8) return check(sense::parameter_list_length_error);
  if (lu.read_only) return check(sense::write_protected);
  Plan p;
  p.io = true;
  p.op = IoOp::write_zeroes;
  p.flow = Flow::unmap;
  p.data_out = length;
  return p;
}

bool unmap_ranges(const uint8_t* list, size_t bytes, const LogicalUnit& lu,
                  std::vector<LbaRange>& ranges, Sense& refused) {
  ranges.clear();
  if (bytes < 8) {
    refused = sense::parameter_list_length_error;
    return false;
  }
  // The block descriptors the list says it holds and that came (a last
  // partial one is ignored).
  const size_t count = std::min<size_t>(be16(list + 2), bytes - 8) / 16;
  if (count > kMaxUnmapDescriptors) {
    refused = sense::invalid_field_in_parameter_list;
    return false;
  }
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* d = list + 8 + 16 * i;
    LbaRange r{be64(d), be32(d + 8)};
    if (!in_range(r.lba, r.blocks, lu)) {  // checked for all before any is unmapped
      ranges.clear();
      refused = sense::lba_out_of_range;
      return false;
    }
    if (r.blocks) ranges.push_back(r);
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const LbaRange& a, const LbaRange& b) { return a.lba < b.lba; });
  size_t kept = 0;
  for (const LbaRange& r : ranges) {
    LbaRange& last = ranges[kept ? kept - 1 : 0];
    if (kept && r.lba <= last.lba + last.blocks) {
      last.blocks = std::max(last.lba + last.blocks, r.lba + r.blocks) - last.lba;
    } else {
      ranges[kept++] = r;
    }
  }
  ranges.resize(kept);
  return true;
}

Plan plan_get_lba_status(const uint8_t* cdb, const LogicalUnit& lu) {
  const uint64_t lba = be64(cdb + 2);
  const uint32_t allocation = be32(cdb + 10);
  if (lba >= lu.blocks) return check(sense::lba_out_of_range);
  if (allocation == 0) return Plan{};
  Plan p;
  p.io = true;
  p.op = IoOp::block_status;
  p.offset = lba * kBlockBytes;
  p.length = std::min((lu.blocks - lba) * kBlockBytes, kStatusSpanBytes);
  p.flow = Flow::lba_status;
  p.allocation = allocation;
  return p;
}

std::vector<uint8_t> lba_status_data(uint64_t start_lba, const std::vector<StatusExtent>& extents,
                                     uint32_t allocation) {
  std::vector<uint8_t> d(8, 0);
  uint64_t lba = start_lba;
  for (const StatusExtent& e : extents) {
    const uint64_t blocks = (uint64_t{e.length} + kBlockBytes - 1) / kBlockBytes;
    if (blocks == 0) continue;
    const size_t at = d.size();
    d.resize(at + 16, 0);
    put64(d, at, lba);
    put32(d, at + 8, static_cast<uint32_t>(blocks));
    d[at + 12] = (e.flags & status_flags::hole) ? 0x01 : 0x00;  // deallocated or mapped
    lba += blocks;
  }
  put32(d, 0, static_cast<uint32_t>(d.size() - 4));
  if (d.size() > allocation) d.resize(allocation);
  return d;
}

}  // namespace sve::scsi

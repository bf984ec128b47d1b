// MODE SENSE and MODE SELECT (SPC-4 6.11-6.14): the caching page (0x08)
// and the control page (0x0a). Nothing is changeable yet: the caching
// page's WCE follows the vdisk's cache, which the administrator sets, so
// MODE SELECT takes a list that changes nothing and refuses any other.
#include <algorithm>

#include "io/scsi/scsi_internal.hpp"

namespace sve::scsi {
namespace {

using namespace bytes;

// The mode pages asked for (0x08 caching, 0x0a control, 0x3f all), or
// nothing for a page not kept here. `changeable`: the mask of what MODE
// SELECT may change (nothing yet: see mode_select).
bool mode_pages(uint8_t page, bool changeable, const LogicalUnit& lu, std::vector<uint8_t>& out) {
  auto caching = [&] {
    std::vector<uint8_t> p(20, 0);
    p[0] = 0x08;
    p[1] = 0x12;
    if (!changeable && lu.write_cache) p[2] = 0x04;  // WCE
    out.insert(out.end(), p.begin(), p.end());
  };
  auto control = [&] {
    std::vector<uint8_t> p(12, 0);
    p[0] = 0x0a;
    p[1] = 0x0a;
    // TST 001b: a task set per I_T nexus (an iSCSI session's commands of
    // the LUN), which its task attributes order (io/iscsi/port).
    if (!changeable) p[2] = 0x20;
    if (!changeable) p[3] = 0x10;  // unrestricted reordering of SIMPLE commands
    // TAS: a task another nexus ends (PREEMPT AND ABORT) is answered TASK
    // ABORTED, so that its initiator learns at once instead of timing out.
    if (!changeable) p[5] = 0x40;
    out.insert(out.end(), p.begin(), p.end());
  };
  if (page == 0x08) caching();
  else if (page == 0x0a) control();
  else if (page == 0x3f) caching(), control();
  else return false;
  return true;
}

}  // namespace

Plan plan_mode_sense(const uint8_t* cdb, bool ten, const LogicalUnit& lu) {
  const bool dbd = cdb[1] & 0x08;
  const uint8_t pc = cdb[2] >> 6, page = cdb[2] & 0x3f, subpage = cdb[3];
  const uint32_t allocation = ten ? be16(cdb + 7) : cdb[4];
  if (pc == 3) return check(sense::saving_not_supported);
  if (subpage != 0 && !(page == 0x3f && subpage == 0xff)) return check(sense::invalid_field_in_cdb);
  std::vector<uint8_t> pages;
  if (!mode_pages(page, pc == 1, lu, pages)) return check(sense::invalid_field_in_cdb);
  std::vector<uint8_t> block;
  if (!dbd) {  // one short block descriptor
    block.assign(8, 0);
    put32(block, 0, static_cast<uint32_t>(std::min<uint64_t>(lu.blocks, 0xffffffffu)));
    put32(block, 4, kBlockBytes);  // (byte 4 is reserved: the length is 24 bits)
  }
  const uint8_t device_specific = static_cast<uint8_t>((lu.read_only ? 0x80 : 0) | 0x10);
  std::vector<uint8_t> d(ten ? 8 : 4, 0);
  if (ten) {
    d[3] = device_specific;
    put16(d, 6, static_cast<uint16_t>(block.size()));
  } else {
    d[2] = device_specific;
    d[3] = static_cast<uint8_t>(block.size());
  }
  d.insert(d.end(), block.begin(), block.end());
  d.insert(d.end(), pages.begin(), pages.end());
  if (ten) put16(d, 0, static_cast<uint16_t>(d.size() - 2));
  else d[0] = static_cast<uint8_t>(d.size() - 1);
  return answer(std::move(d), allocation);
}


Plan plan_mode_select(const uint8_t* cdb, bool ten, const LogicalUnit&) {
  const bool pf = cdb[1] & 0x10, sp = cdb[1] & 0x01;
  const uint32_t length = ten ? be16(cdb + 7) : cdb[4];
  if (sp) return check(sense::invalid_field_in_cdb);  // no saved pages
  if (length == 0) return Plan{};
  if (!pf || length > kMaxModeSelectBytes) return check(sense::invalid_field_in_cdb);
  Plan p;
  p.flow = Flow::mode_select;
  p.mode_ten = ten;
  p.data_out = length;
  return p;
}

Sense mode_select(const uint8_t* list, size_t bytes, bool ten, const LogicalUnit& lu) {
  const size_t header = ten ? 8 : 4;
  if (bytes < header) return sense::parameter_list_length_error;
  const size_t descriptors = ten ? be16(list + 6) : list[3];
  if (ten && (list[4] & 0x01)) return sense::invalid_field_in_parameter_list;  // LONGLBA
  if (descriptors != 0 && descriptors != 8) return sense::invalid_field_in_parameter_list;
  if (bytes < header + descriptors) return sense::parameter_list_length_error;
  if (descriptors == 8) {
    // A short block descriptor: the block length cannot change, nor the
    // number of blocks (0 leaves it as it is).
    const uint8_t* d = list + header;
    const uint32_t blocks = be32(d), block_length = be32(d + 4) & 0xffffff;
    const uint32_t now = static_cast<uint32_t>(std::min<uint64_t>(lu.blocks, 0xffffffffu));
    if (block_length != kBlockBytes || (blocks != 0 && blocks != now))
      return sense::invalid_field_in_parameter_list;
  }
  size_t at = header + descriptors;
  while (at < bytes) {
    if (bytes - at < 2) return sense::parameter_list_length_error;
    const uint8_t code = list[at] & 0x3f;
    if (list[at] & 0x40) return sense::invalid_field_in_parameter_list;  // no subpages here
    const size_t page_bytes = size_t{list[at + 1]} + 2;
    if (bytes - at < page_bytes) return sense::parameter_list_length_error;
    std::vector<uint8_t> current;
    if (code == 0x3f || !mode_pages(code, false, lu, current) || current.size() != page_bytes)
      return sense::invalid_field_in_parameter_list;
    // Every bit but PS (byte 0's top bit) must stay as it is.
    if ((list[at] & 0x7f) != current[0] ||
        !std::equal(current.begin() + 1, current.end(), list + at + 1))
      return sense::invalid_field_in_parameter_list;
    at += page_bytes;
  }
  return sense::none;
}

}  // namespace sve::scsi

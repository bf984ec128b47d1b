#include "virt/virtualizer.hpp"

#include <cerrno>
#include <vector>

namespace sve {

IoRequestPtr Virtualizer::make_piece(const IoRequestPtr& parent, uint32_t mdisk_id,
                                     uint64_t offset, uint64_t length,
                                     uint64_t request_offset) {
  IoRequestPtr piece = make_request();
  piece->op = parent->op;
  piece->flags = parent->flags;
  piece->volume = mdisk_id;
  piece->offset = offset;
  piece->length = length;
  piece->buffer = parent->buffer;  // shared, not copied
  piece->buffer_offset = parent->buffer_offset + request_offset;
  piece->client = &piece_client_;
  piece->parent = parent;
  return piece;
}

void Virtualizer::submit(IoRequestPtr request) {
  ++stats_.requests;
  const VolumeLayout* layout = map_ ? map_->find(request->volume) : nullptr;
  if (!layout) {
    complete(std::move(request), ENODEV);
    return;
  }
  std::vector<IoRequestPtr> pieces;
  if (request->op == IoOp::flush) {
    for (uint32_t mdisk : layout->mdisks)
      pieces.push_back(make_piece(request, mdisk, 0, 0, 0));
  } else {
    uint64_t end = request->offset + request->length;
    if (end < request->offset || end > layout->size_bytes) {
      complete(std::move(request), ERANGE);
      return;
    }
    for (const Piece& p : split_range(*layout, request->offset, request->length))
      pieces.push_back(make_piece(request, p.mdisk_id, p.mdisk_offset, p.length,
                                  p.request_offset));
  }
  if (pieces.empty()) {  // zero-length request or a vdisk without extents
    complete(std::move(request), 0);
    return;
  }
  if (pieces.size() > 1) ++stats_.split_requests;
  stats_.pieces += pieces.size();
  request->status = 0;
  request->pending_children = static_cast<uint32_t>(pieces.size());
  for (auto& piece : pieces) lower_.submit(std::move(piece));
}

void Virtualizer::piece_done(IoRequestPtr piece) {
  IoRequestPtr parent = std::move(piece->parent);
  if (piece->status != 0 && parent->status == 0) parent->status = piece->status;
  piece.reset();
  if (--parent->pending_children == 0) {
    int status = parent->status;
    complete(std::move(parent), status);
  }
}

}  // namespace sve

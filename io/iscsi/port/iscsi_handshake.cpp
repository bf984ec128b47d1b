#include "io/iscsi/port/iscsi_handshake.hpp"

#include <cstring>

#include "hw/port/tcp.hpp"
#include "io/iscsi/iscsi_replies.hpp"
#include "util/crc.hpp"

namespace sve::iscsi {
namespace {

constexpr uint32_t kLoginMaxRecv = 8192;  // RFC 7143: until negotiated

void put_digest(uint8_t* at, uint32_t crc) {
  for (int i = 0; i < 4; ++i) at[i] = static_cast<uint8_t>(crc >> (8 * i));
}
uint32_t get_digest(const uint8_t* at) {
  return uint32_t{at[0]} | uint32_t{at[1]} << 8 | uint32_t{at[2]} << 16 | uint32_t{at[3]} << 24;
}

}  // namespace

bool read_pdu(int fd, const Digests& digests, uint32_t max_recv, Bhs& header,
              std::vector<uint8_t>& data, std::string& error) {
  uint8_t head[kBhsBytes + 255 * 4 + kDigestBytes];
  if (!recv_all(fd, head, kBhsBytes)) {
    error = "the initiator left (or stalled)";
    return false;
  }
  header = Bhs::from(head);
  PduLayout layout = layout_of(header, digests, max_recv);
  if (!layout.error.empty()) {
    error = layout.error;
    return false;
  }
  if (layout.header_rest() && !recv_all(fd, head + kBhsBytes, layout.header_rest())) {
    error = "the initiator left in the middle of a header";
    return false;
  }
  if (layout.header_digest_bytes &&
      crc32c(head, kBhsBytes + layout.ahs_bytes) != get_digest(head + kBhsBytes + layout.ahs_bytes)) {
    error = "a header digest that does not match";
    return false;
  }
  data.resize(layout.data_rest());
  if (!data.empty() && !recv_all(fd, data.data(), data.size())) {
    error = "the initiator left in the middle of a data segment";
    return false;
  }
  if (layout.data_digest_bytes &&
      crc32c(data.data(), layout.data_padded_bytes) != get_digest(data.data() + layout.data_padded_bytes)) {
    error = "a data digest that does not match";
    return false;
  }
  data.resize(layout.data_bytes);
  return true;
}

bool write_pdu(int fd, const Digests& digests, const Bhs& header, const uint8_t* data,
               size_t bytes) {
  std::vector<uint8_t> out(header.data(), header.data() + kBhsBytes);
  if (digests.header) {
    out.resize(kBhsBytes + kDigestBytes);
    put_digest(out.data() + kBhsBytes, crc32c(out.data(), kBhsBytes));
  }
  const size_t at = out.size();
  out.insert(out.end(), data, data + bytes);
  out.resize(at + padded(static_cast<uint32_t>(bytes)), 0);
  if (digests.data && bytes) {
    uint32_t crc = crc32c(out.data() + at, out.size() - at);
    out.resize(out.size() + kDigestBytes);
    put_digest(out.data() + out.size() - kDigestBytes, crc);
  }
  return send_all(fd, out.data(), out.size());
}

LoginOutcome run_login(int fd, LoginConfig config) {
  LoginOutcome out;
  LoginMachine machine(std::move(config));
  uint32_t stat_sn = 1;
  Bhs request;
  std::vector<uint8_t> data;
  while (!machine.full_feature()) {
    if (!read_pdu(fd, Digests{}, kLoginMaxRecv, request, data, out.reason)) return out;
    LoginMachine::Reply reply = machine.on_request(request, data.data(), data.size(), stat_sn++);
    bool sent = write_pdu(fd, Digests{}, reply.header,
                          reinterpret_cast<const uint8_t*>(reply.text.data()), reply.text.size());
    if (reply.close) {
      out.reason = machine.failure();
      return out;
    }
    if (!sent) {
      out.reason = "the initiator stopped taking the login's replies";
      return out;
    }
  }
  out.logged_in = true;
  out.type = machine.session_type();
  out.params = machine.params();
  out.initiator = machine.initiator_name();
  out.initiator_port = machine.initiator_port();
  out.exp_cmd_sn = machine.exp_cmd_sn();
  out.stat_sn = stat_sn;
  out.joined = machine.joined();
  out.cid = machine.cid();
  return out;
}

std::string serve_discovery(int fd, const LoginOutcome& login, const std::string& target_name,
                            const std::vector<Portal>& portals, uint32_t command_window) {
  const Digests digests{login.params.header_digest, login.params.data_digest};
  CommandWindow window(login.exp_cmd_sn, command_window);
  Numbers n;
  n.stat_sn = login.stat_sn;
  Bhs request;
  std::vector<uint8_t> data;
  std::string error;
  for (;;) {
    if (!read_pdu(fd, digests, login.params.target_max_recv, request, data, error)) return error;
    const auto op = static_cast<Op>(request.opcode());
    if (op == Op::text || op == Op::logout || op == Op::nop_out)
      window.take(request.get32(24), request.immediate());
    n.exp_cmd_sn = window.exp_cmd_sn();
    n.max_cmd_sn = window.max_cmd_sn();
    Bhs reply;
    std::string text;
    const uint8_t* reply_data = nullptr;
    size_t reply_bytes = 0;
    if (op == Op::text) {
      std::vector<TextPair> answers;
      if (request.flags() & 0x40) return "a continued text request in a discovery session";
      auto keys = parse_text(data.data(), data.size());
      if (!keys) return keys.error().message;
      for (const TextPair& p : keys.value()) {
        if (p.key != "SendTargets") {
          answers.push_back({p.key, "NotUnderstood"});
          continue;
        }
        SendTargetsAnswer a = send_targets(p.value, SessionType::discovery, target_name, portals);
        if (!a.error.empty()) return a.error;
        answers.insert(answers.end(), a.pairs.begin(), a.pairs.end());
      }
      text = format_text(answers);
      reply = text_response(request, static_cast<uint32_t>(text.size()), n);
      reply_data = reinterpret_cast<const uint8_t*>(text.data());
      reply_bytes = text.size();
    } else if (op == Op::nop_out) {
      if (request.initiator_task_tag() == kNoTag) continue;  // an answer to no ping of ours
      reply = nop_in(request, static_cast<uint32_t>(data.size()), n);
      reply_data = data.data();
      reply_bytes = data.size();
    } else if (op == Op::logout) {
      reply = logout_response(request, n);
      write_pdu(fd, digests, reply, nullptr, 0);
      return "logged out";
    } else {
      return std::string("a ") + to_string(op) + " in a discovery session";
    }
    if (!write_pdu(fd, digests, reply, reply_data, reply_bytes))
      return "the initiator stopped taking replies";
  }
}

}  // namespace sve::iscsi

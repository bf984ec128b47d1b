// Fuzz target: what an initiator sends at login, up to the first answer.
// The first 48 bytes are a header: its layout is taken or refused, never
// more than the target declared it receives. The rest is a login's text:
// parsed or refused; what parses is negotiated in both stages, as a
// session's first connection and as one that joins it (which changes no
// key of the session's), every answer is a well-formed pair, and
// formatting what parsed parses the same.
#include <cstdint>
#include <cstdlib>

#include "io/iscsi/iscsi_pdu.hpp"
#include "io/iscsi/iscsi_text.hpp"

using namespace sve::iscsi;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size >= kBhsBytes) {
    Bhs header = Bhs::from(data);
    PduLayout l = layout_of(header, Digests{true, true}, 8192);
    if (l.error.empty() && (l.data_bytes > 8192 || l.data_padded_bytes < l.data_bytes))
      std::abort();
    data += kBhsBytes;
    size -= kBhsBytes;
  }
  auto pairs = parse_text(data, size);
  if (!pairs) return 0;
  std::string again = format_text(pairs.value());
  auto twice = parse_text(reinterpret_cast<const uint8_t*>(again.data()), again.size());
  if (!twice || twice.value() != pairs.value()) std::abort();
  for (bool leading : {true, false})
    for (Stage stage : {Stage::security, Stage::operational}) {
      Negotiation n{TargetOffer{}};
      n.set_leading(leading);
      auto answers = n.answer(pairs.value(), stage);
      if (!answers) continue;
      std::string text = format_text(answers.value());
      if (!parse_text(reinterpret_cast<const uint8_t*>(text.data()), text.size())) std::abort();
      const SessionParams& p = n.params();
      if (p.first_burst_length > p.max_burst_length || p.max_outstanding_r2t == 0 ||
          p.initiator_max_recv < 512)
        std::abort();
      // A connection that joins a session changes none of its keys.
      const SessionParams defaults;
      if (!leading && (p.max_connections != defaults.max_connections ||
                       p.max_burst_length != defaults.max_burst_length ||
                       p.first_burst_length != defaults.first_burst_length ||
                       p.immediate_data != defaults.immediate_data ||
                       p.initial_r2t != defaults.initial_r2t ||
                       p.error_recovery_level != defaults.error_recovery_level))
        std::abort();
    }
  return 0;
}

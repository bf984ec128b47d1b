#pragma once
// The target's side of an iSCSI login (RFC 7143 6.3, 11.12-11.13): one
// Login Request in, one Login Response out, through the security stage
// (AuthMethod None or CHAP, one-way or mutual) and the operational stage
// (Negotiation) to the full-feature phase, or to a failure status after
// which the connection closes. Who may log in, and with which secrets,
// is the caller's answer (the host objects). A protocol core: no sockets.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/iscsi/iscsi_chap.hpp"
#include "io/iscsi/iscsi_pdu.hpp"
#include "io/iscsi/iscsi_text.hpp"

namespace sve::iscsi {

enum class SessionType { normal, discovery };

// What the caller says about an initiator that names itself.
struct LoginPolicy {
  bool allowed = false;      // a host with this name (or loopback, while no hosts exist)
  std::string why;           // when not: said in the log
  std::string chap_secret;   // CHAP required when not empty
  std::string target_secret; // the target's secret for mutual CHAP (empty: no mutual)
};

// The answer to a login that adds a connection to a session (its TSIH
// set): success, or why not (session_does_not_exist, too_many_connections).
struct JoinAnswer {
  LoginStatus status = LoginStatus::session_does_not_exist;
  std::string why;
};

struct LoginConfig {
  std::string target_name;  // iqn.2026-12.org.sve:<cluster>
  uint16_t portal_group_tag = 1;
  uint16_t tsih = 1;  // a new session's handle, given in the last response
  TargetOffer offer;
  uint32_t command_window = 64;  // MaxCmdSN - ExpCmdSN + 1
  std::function<LoginPolicy(const std::string& initiator, SessionType type)> policy;
  // A login with a TSIH (another connection of that session, from the
  // initiator port named, with this CID): whether it may join. None: refused.
  std::function<JoinAnswer(const std::string& initiator_port, uint16_t tsih, uint16_t cid)> join;
};

class LoginMachine {
 public:
  struct Reply {
    Bhs header;        // a Login Response, DataSegmentLength set
    std::string text;  // its data segment
    bool close = false;  // a failure: close once it is sent
  };

  explicit LoginMachine(LoginConfig config);

  // One Login Request (its header and data segment). The reply's StatSN
  // is `stat_sn`; the caller counts.
  Reply on_request(const Bhs& request, const uint8_t* data, size_t bytes, uint32_t stat_sn);

  bool full_feature() const { return stage_ == Stage::full_feature; }
  const SessionParams& params() const { return negotiation_.params(); }
  const std::string& initiator_name() const { return initiator_; }
  // The initiator port (SPC-4's iSCSI name for it): the name, ",i,0x" and
  // the session's ISID in hex. Another ISID is another I_T nexus.
  std::string initiator_port() const;
  SessionType session_type() const { return type_; }
  // The session this connection joined (its TSIH), or 0: a new session.
  uint16_t joined() const { return joined_; }
  uint16_t cid() const { return cid_; }
  uint32_t exp_cmd_sn() const { return cmd_sn_; }
  // Why the login failed (for the log), once a reply closed it.
  const std::string& failure() const { return failure_; }

 private:
  Reply fail(const Bhs& request, LoginStatus status, std::string why, uint32_t stat_sn);
  // The security stage's keys: AuthMethod, CHAP's exchange. Empty when
  // fine, else why the login fails.
  std::string authenticate(const std::vector<TextPair>& keys, std::vector<TextPair>& answers,
                           LoginStatus& status);

  LoginConfig config_;
  Negotiation negotiation_;
  Stage stage_ = Stage::security;
  bool first_ = true;
  uint8_t isid_[6] = {};
  uint16_t joined_ = 0;
  uint16_t cid_ = 0;
  uint32_t cmd_sn_ = 0;
  std::string initiator_;
  SessionType type_ = SessionType::normal;
  LoginPolicy policy_;
  std::string pending_;  // a text continued over several requests (C bit)
  enum class Auth { none_chosen, chap_chosen, chap_challenged, done } auth_ = Auth::none_chosen;
  bool auth_method_seen_ = false;
  uint8_t chap_id_ = 0;
  Bytes chap_challenge_;
  std::string failure_;
};

}  // namespace sve::iscsi

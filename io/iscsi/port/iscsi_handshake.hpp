#pragma once
// The blocking part of an iSCSI connection, on the port's handshake
// thread: the login (LoginMachine over the socket, one PDU at a time), and
// the whole of a discovery session (SendTargets, NOP, Logout: a few PDUs
// that need no core). A normal session's full-feature phase moves to a
// core (iscsi_connection.hpp). The socket's read and write timeouts bound
// how long an initiator may stall any of it.
#include <cstdint>
#include <string>
#include <vector>

#include "io/iscsi/iscsi_discovery.hpp"
#include "io/iscsi/iscsi_login.hpp"

namespace sve::iscsi {

struct LoginOutcome {
  bool logged_in = false;
  std::string reason;  // why not
  SessionType type = SessionType::normal;
  SessionParams params;
  std::string initiator;
  std::string initiator_port;  // name ",i,0x" ISID (LoginMachine::initiator_port)
  uint32_t exp_cmd_sn = 0;
  uint32_t stat_sn = 0;  // the next StatSN of the connection
  uint16_t joined = 0;   // the session it joined (its TSIH), or 0: a new one
  uint16_t cid = 0;
};

LoginOutcome run_login(int fd, LoginConfig config);

// A discovery session after its login, until it logs out or leaves.
// Returns why it ended.
std::string serve_discovery(int fd, const LoginOutcome& login, const std::string& target_name,
                            const std::vector<Portal>& portals, uint32_t command_window);

// One PDU, blocking: its header and data segment (padding dropped),
// digests checked when on. False with `error` set on a malformed PDU or
// a connection that ended.
bool read_pdu(int fd, const Digests& digests, uint32_t max_recv, Bhs& header,
              std::vector<uint8_t>& data, std::string& error);
bool write_pdu(int fd, const Digests& digests, const Bhs& header, const uint8_t* data,
               size_t bytes);

}  // namespace sve::iscsi

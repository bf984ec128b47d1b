// SCSI reservations: persistent reservations' rules (SPC-4 5.13) and
// RESERVE/RELEASE's (SPC-2) on the model's state (model/reservations.hpp),
// the commands each nexus may run under each type and PERSISTENT RESERVE
// IN's answers (io/scsi/scsi_reservations.hpp), and the state as cluster
// state (a model that round-trips).
#include <catch2/catch.hpp>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "io/scsi/scsi_commands.hpp"
#include "io/scsi/scsi_reservations.hpp"
#include "model/model.hpp"
#include "model/reservations.hpp"
#include "model/model_codec.hpp"
#include "scsi_test_cdb.hpp"

using namespace sve::scsi;
using sve::ClusterModel;
using sve::apply_request;
using sve::kExclusiveAccess;
using sve::kExclusiveAccessAllRegistrants;
using sve::kExclusiveAccessRegistrantsOnly;
using sve::kWriteExclusive;
using sve::kWriteExclusiveAllRegistrants;
using sve::kWriteExclusiveRegistrantsOnly;
using sve::VdiskReservations;
using sve::decode_config;
using sve::encode_config;
using sve::scsi::test::be;
using sve::scsi::test::Cdb;
using Kind = ReservationRequest::Kind;

namespace {

const Nexus A{"iqn.2026-12.test:a,i,0x400001370000", 1};
const Nexus B{"iqn.2026-12.test:b,i,0x400001370000", 1};
const Nexus C{"iqn.2026-12.test:c,i,0x400001370000", 2};

ReservationRequest req(Kind kind, uint64_t key = 0, uint64_t action_key = 0, uint8_t type = 0) {
  ReservationRequest r;
  r.kind = kind;
  r.key = key;
  r.action_key = action_key;
  r.type = type;
  return r;
}

// The status the command ends with.
Status run(Reservations& s, const Nexus& who, const ReservationRequest& r) {
  Status status;
  Sense sense;
  status_of(apply_request(s, who, r).result, status, sense);
  return status;
}

Sense refusal(Reservations& s, const Nexus& who, const ReservationRequest& r) {
  Status status;
  Sense sense;
  status_of(apply_request(s, who, r).result, status, sense);
  return sense;
}

// The unit attention the last change told `n`, if any.
bool told(const Reservations& s, const Nexus& n, Sense& out) {
  uint16_t code = 0;
  if (!sve::told(s, n, code)) return false;
  out = {0x06, static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
  return true;
}

const Cdb kRead{0x28, 0, 0, 0, 0, 0, 0, 0, 1};
const Cdb kWrite{0x2a, 0, 0, 0, 0, 0, 0, 0, 1};
const Cdb kInquiryCdb{0x12, 0, 0, 0, 36};
const Cdb kTur{0x00};

bool can_read(const Reservations& s, const Nexus& n) { return !conflicts(kRead.b.data(), s, n); }
bool can_write(const Reservations& s, const Nexus& n) { return !conflicts(kWrite.b.data(), s, n); }

}  // namespace

TEST_CASE("registering takes the nexus's key, a wrong key is a conflict", "[reservations]") {
  Reservations s;
  CHECK(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  CHECK(s.generation == 1);
  REQUIRE(s.registrations.size() == 1);
  CHECK(s.registrations[0].key == 0xa);
  // Registered: the current key must be given to change it.
  CHECK(run(s, A, req(Kind::register_key, 0x1, 0xb)) == Status::reservation_conflict);
  CHECK(s.generation == 1);
  CHECK(run(s, A, req(Kind::register_key, 0xa, 0xb)) == Status::good);
  CHECK(s.registrations[0].key == 0xb);
  // REGISTER AND IGNORE does not look at it.
  CHECK(run(s, A, req(Kind::register_and_ignore, 0x77, 0xc)) == Status::good);
  CHECK(s.registrations[0].key == 0xc);
  // Not registered: a nonzero key is a conflict; key 0 with new key 0 is nothing.
  CHECK(run(s, B, req(Kind::register_key, 0x5, 0x6)) == Status::reservation_conflict);
  auto nothing = apply_request(s, B, req(Kind::register_key, 0, 0));
  CHECK(nothing.result == ReservationResult::good);
  CHECK_FALSE(nothing.changed);
  // A new key 0 unregisters.
  CHECK(run(s, A, req(Kind::register_key, 0xc, 0)) == Status::good);
  CHECK(s.registrations.empty());
  CHECK(s.generation == 4);
}

TEST_CASE("another ISID is another nexus, ALL_TG_PT holds through every port",
          "[reservations]") {
  Reservations s;
  REQUIRE(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  Nexus other_session = A;
  other_session.initiator = "iqn.2026-12.test:a,i,0x400001370001";
  Nexus other_port = A;
  other_port.port = 2;
  CHECK(s.registration_of(A));
  CHECK_FALSE(s.registration_of(other_session));
  CHECK_FALSE(s.registration_of(other_port));
  ReservationRequest all = req(Kind::register_key, 0, 0xd);
  all.all_ports = true;
  REQUIRE(run(s, C, all) == Status::good);
  Nexus c_elsewhere = C;
  c_elsewhere.port = 7;
  CHECK(s.registration_of(c_elsewhere));
}

TEST_CASE("who may read and write under each reservation type", "[reservations]") {
  // As libiscsi's ProutReserve.Access tests expect: a registered and an
  // unregistered other initiator, reading and writing.
  struct Row {
    uint8_t type;
    bool reg_read, reg_write, unreg_read, unreg_write;
  };
  const Row rows[] = {
      {kExclusiveAccess, false, false, false, false},
      {kWriteExclusive, true, false, true, false},
      {kExclusiveAccessRegistrantsOnly, true, true, false, false},
      {kWriteExclusiveRegistrantsOnly, true, true, true, false},
      {kExclusiveAccessAllRegistrants, true, true, false, false},
      {kWriteExclusiveAllRegistrants, true, true, true, false},
  };
  for (const Row& row : rows) {
    INFO("type " << int(row.type));
    Reservations s;
    REQUIRE(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
    REQUIRE(run(s, B, req(Kind::register_key, 0, 0xb)) == Status::good);
    REQUIRE(run(s, A, req(Kind::reserve, 0xa, 0, row.type)) == Status::good);
    CHECK(can_read(s, A));
    CHECK(can_write(s, A));
    CHECK(can_read(s, B) == row.reg_read);
    CHECK(can_write(s, B) == row.reg_write);
    CHECK(can_read(s, C) == row.unreg_read);
    CHECK(can_write(s, C) == row.unreg_write);
    // Asking about the unit is never refused.
    CHECK_FALSE(conflicts(kInquiryCdb.b.data(), s, C));
    CHECK_FALSE(conflicts(kTur.b.data(), s, C));
  }
}

TEST_CASE("reserve and release: the holder, the type, the key", "[reservations]") {
  Reservations s;
  CHECK(run(s, A, req(Kind::reserve, 0, 0, kWriteExclusive)) == Status::reservation_conflict);
  REQUIRE(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  REQUIRE(run(s, B, req(Kind::register_key, 0, 0xb)) == Status::good);
  CHECK(run(s, A, req(Kind::reserve, 0xa, 0, 2)) == Status::check_condition);  // no type 2
  CHECK(run(s, A, req(Kind::reserve, 0xb, 0, kWriteExclusive)) ==
        Status::reservation_conflict);  // B's key
  const uint32_t generation = s.generation;
  REQUIRE(run(s, A, req(Kind::reserve, 0xa, 0, kWriteExclusive)) == Status::good);
  CHECK(s.generation == generation);  // reservations do not count
  CHECK(run(s, A, req(Kind::reserve, 0xa, 0, kWriteExclusive)) == Status::good);  // again
  CHECK(run(s, B, req(Kind::reserve, 0xb, 0, kWriteExclusive)) == Status::reservation_conflict);
  // B does not hold it: its release changes nothing.
  auto by_b = apply_request(s, B, req(Kind::release, 0xb, 0, kWriteExclusive));
  CHECK(by_b.result == ReservationResult::good);
  CHECK_FALSE(by_b.changed);
  CHECK(refusal(s, A, req(Kind::release, 0xa, 0, kExclusiveAccess)) == sense::invalid_release);
  CHECK(s.type == kWriteExclusive);
  CHECK(run(s, A, req(Kind::release, 0xa, 0, kWriteExclusive)) == Status::good);
  CHECK(s.type == 0);
  CHECK(s.attention == 0);  // releasing a WRITE EXCLUSIVE tells nobody
}

TEST_CASE("the holder unregistering: its reservation goes, registrants are told",
          "[reservations]") {
  Reservations s;
  REQUIRE(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  REQUIRE(run(s, B, req(Kind::register_key, 0, 0xb)) == Status::good);
  REQUIRE(run(s, A, req(Kind::reserve, 0xa, 0, kWriteExclusiveRegistrantsOnly)) == Status::good);
  REQUIRE(run(s, A, req(Kind::register_key, 0xa, 0)) == Status::good);
  CHECK(s.type == 0);
  Sense told_b;
  REQUIRE(told(s, B, told_b));
  CHECK(told_b == sense::reservations_released);
  Sense told_a;
  CHECK_FALSE(told(s, A, told_a));

  // All registrants: it stays while any registrant is left.
  Reservations t;
  REQUIRE(run(t, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  REQUIRE(run(t, B, req(Kind::register_key, 0, 0xb)) == Status::good);
  REQUIRE(run(t, A, req(Kind::reserve, 0xa, 0, kWriteExclusiveAllRegistrants)) == Status::good);
  CHECK(t.holds_reservation(B));
  REQUIRE(run(t, A, req(Kind::register_key, 0xa, 0)) == Status::good);
  CHECK(t.type == kWriteExclusiveAllRegistrants);
  CHECK(t.holds_reservation(B));
  REQUIRE(run(t, B, req(Kind::register_key, 0xb, 0)) == Status::good);
  CHECK(t.type == 0);
}

TEST_CASE("preempt and clear", "[reservations]") {
  Reservations s;
  REQUIRE(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  REQUIRE(run(s, B, req(Kind::register_key, 0, 0xb)) == Status::good);
  REQUIRE(run(s, C, req(Kind::register_key, 0, 0xc)) == Status::good);
  // No reservation: registrations with the key named go.
  CHECK(refusal(s, A, req(Kind::preempt, 0xa, 0)) == sense::invalid_field_in_parameter_list);
  CHECK(run(s, A, req(Kind::preempt, 0xa, 0x99)) == Status::reservation_conflict);  // no such key
  const uint32_t generation = s.generation;
  REQUIRE(run(s, A, req(Kind::preempt, 0xa, 0xc)) == Status::good);
  CHECK(s.generation == generation + 1);
  CHECK_FALSE(s.registration_of(C));
  Sense sc;
  REQUIRE(told(s, C, sc));
  CHECK(sc == sense::registrations_preempted);
  CHECK_FALSE(s.told_abort);  // a PREEMPT: C's tasks go on
  // The holder's key: the preemptor takes the reservation, with its type.
  REQUIRE(run(s, B, req(Kind::reserve, 0xb, 0, kExclusiveAccess)) == Status::good);
  REQUIRE(run(s, A, req(Kind::preempt_and_abort, 0xa, 0xb, kWriteExclusive)) == Status::good);
  CHECK(s.holds_reservation(A));
  CHECK(s.type == kWriteExclusive);
  CHECK_FALSE(s.registration_of(B));
  Sense sb;
  REQUIRE(told(s, B, sb));
  CHECK(sb == sense::registrations_preempted);
  CHECK_FALSE(told(s, A, sb));
  CHECK(s.told_abort);  // every node ends B's tasks before it enforces this
  // CLEAR: every registration and the reservation; the others are told.
  REQUIRE(run(s, C, req(Kind::register_key, 0, 0xc)) == Status::good);
  CHECK(run(s, C, req(Kind::clear, 0xa)) == Status::reservation_conflict);  // C's key is 0xc
  REQUIRE(run(s, C, req(Kind::clear, 0xc)) == Status::good);
  CHECK_FALSE(s.told_abort);  // (a later change that tells, not an abort)
  CHECK(s.registrations.empty());
  CHECK(s.type == 0);
  Sense sa;
  REQUIRE(told(s, A, sa));
  CHECK(sa == sense::reservations_preempted);
  CHECK_FALSE(told(s, C, sa));
}

TEST_CASE("REGISTER AND MOVE hands the reservation to another nexus", "[reservations]") {
  auto move = [](uint64_t key, uint64_t action_key, const Nexus& to, bool unregister) {
    ReservationRequest r = req(Kind::register_and_move, key, action_key);
    r.move_to = to;
    r.unregister = unregister;
    return r;
  };
  Reservations s;
  REQUIRE(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  REQUIRE(run(s, B, req(Kind::register_key, 0, 0xb)) == Status::good);
  // Nothing held, or held by another: a conflict (and a wrong key).
  CHECK(run(s, A, move(0xa, 0xc, C, false)) == Status::reservation_conflict);
  REQUIRE(run(s, A, req(Kind::reserve, 0xa, 0, kWriteExclusive)) == Status::good);
  CHECK(run(s, B, move(0xb, 0xc, C, false)) == Status::reservation_conflict);
  CHECK(run(s, A, move(0xb, 0xc, C, false)) == Status::reservation_conflict);
  CHECK(refusal(s, A, move(0xa, 0, C, false)) == sense::invalid_field_in_parameter_list);
  CHECK(refusal(s, A, move(0xa, 0xc, A, false)) == sense::invalid_field_in_parameter_list);
  CHECK(refusal(s, A, move(0xa, 0xc, Nexus{C.initiator, 0}, false)) ==
        sense::invalid_field_in_parameter_list);
  // To C, not registered: registered with the key given, holding the
  // reservation of the same type; A stays registered.
  const uint32_t generation = s.generation;
  REQUIRE(run(s, A, move(0xa, 0xc, C, false)) == Status::good);
  CHECK((s.holds_reservation(C) && !s.holds_reservation(A) && s.type == kWriteExclusive));
  CHECK((s.registration_of(C)->key == 0xc && s.registration_of(A)));
  CHECK(s.generation == generation + 1);
  // On to B, registered: its key replaced; C leaves (UNREG).
  REQUIRE(run(s, C, move(0xc, 0xbb, B, true)) == Status::good);
  CHECK((s.holds_reservation(B) && s.registration_of(B)->key == 0xbb));
  CHECK_FALSE(s.registration_of(C));
  CHECK(s.registrations.size() == 2);
  // A nexus registered through every port (ALL_TG_PT) keeps that
  // registration, its key replaced; the sender's own is no other nexus.
  ReservationRequest everywhere = req(Kind::register_key, 0, 0xd);
  everywhere.all_ports = true;
  REQUIRE(run(s, C, everywhere) == Status::good);
  REQUIRE(run(s, B, move(0xbb, 0xdd, C, false)) == Status::good);
  CHECK(s.registrations.size() == 3);  // A, B, and C's one
  CHECK((s.holds_reservation(C) && s.registration_of(C)->key == 0xdd &&
         s.registration_of(C)->all_ports));
  CHECK(refusal(s, C, move(0xdd, 0xee, Nexus{C.initiator, 9}, false)) ==
        sense::invalid_field_in_parameter_list);
  REQUIRE(run(s, C, move(0xdd, 0xbb, B, false)) == Status::good);
  // An all-registrants reservation is nobody's to move.
  REQUIRE(run(s, B, req(Kind::release, 0xbb, 0, kWriteExclusive)) == Status::good);
  REQUIRE(run(s, B, req(Kind::reserve, 0xbb, 0, kWriteExclusiveAllRegistrants)) == Status::good);
  CHECK(run(s, B, move(0xbb, 0xc, C, false)) == Status::reservation_conflict);
}

TEST_CASE("a TransportID names an iSCSI initiator port, and REGISTER AND MOVE's list is parsed as hostile",
          "[reservations]") {
  auto id = [](const std::string& text, uint8_t format = 1, uint8_t protocol = 5) {
    size_t n = std::max<size_t>(20, (text.size() + 1 + 3) / 4 * 4);
    std::vector<uint8_t> t(4 + n, 0);
    t[0] = static_cast<uint8_t>(format << 6 | protocol);
    t[2] = static_cast<uint8_t>(n >> 8);
    t[3] = static_cast<uint8_t>(n);
    std::copy(text.begin(), text.end(), t.begin() + 4);
    return t;
  };
  std::string port;
  auto parses = [&](const std::vector<uint8_t>& t) {
    return parse_transport_id(t.data(), t.size(), port);
  };
  REQUIRE(parses(id("iqn.2026-12.test:c,i,0x400001370000")));
  CHECK(port == "iqn.2026-12.test:c,i,0x400001370000");
  REQUIRE(parses(id("iqn.2026-12.test:c,I,0X40000137ABCD")));  // as a login names it
  CHECK(port == "iqn.2026-12.test:c,i,0x40000137abcd");
  CHECK_FALSE(parses(id("iqn.2026-12.test:c,i,0x400001370000", 0)));  // the device, not a port
  CHECK_FALSE(parses(id("iqn.2026-12.test:c,i,0x400001370000", 1, 6)));  // not iSCSI
  CHECK_FALSE(parses(id("iqn.2026-12.test:c")));                          // no ISID
  CHECK_FALSE(parses(id("iqn.2026-12.test:c,i,0x4000013700zz")));        // not hex
  CHECK_FALSE(parses(id(",i,0x400001370000")));                           // no name
  std::vector<uint8_t> unterminated = id("iqn.2026-12.test:c,i,0x400001370000");
  std::fill(unterminated.begin() + 4, unterminated.end(), 'a');
  CHECK_FALSE(parses(unterminated));
  std::vector<uint8_t> cut = id("iqn.2026-12.test:c,i,0x400001370000");
  CHECK_FALSE(parse_transport_id(cut.data(), cut.size() - 4, port));  // longer than what came
  CHECK_FALSE(parse_transport_id(cut.data(), 0, port, true));  // nothing: not a byte read
  // The whole command: its keys, UNREG, the relative port, the TransportID.
  std::vector<uint8_t> list(24, 0);
  list[7] = 0xa;
  list[15] = 0xc;
  list[17] = 0x02;
  list[19] = 2;
  const std::vector<uint8_t> tid = id("iqn.2026-12.test:c,i,0x400001370000");
  list[23] = static_cast<uint8_t>(tid.size());
  list.insert(list.end(), tid.begin(), tid.end());
  auto cdb = Cdb{0x5f, 7}.be(5, static_cast<uint32_t>(list.size()), 4);
  CHECK(plan_reservation(cdb.b.data(), nullptr).data_out == list.size());
  ReservationRequest r;
  Sense refused;
  REQUIRE(parse_reservation(cdb.b.data(), list.data(), list.size(), r, refused));
  CHECK((r.kind == Kind::register_and_move && r.key == 0xa && r.action_key == 0xc &&
         r.unregister && r.move_to == Nexus{"iqn.2026-12.test:c,i,0x400001370000", 2}));
  list[23] = static_cast<uint8_t>(tid.size() + 4);  // a TransportID past the list's end
  CHECK_FALSE(parse_reservation(cdb.b.data(), list.data(), list.size(), r, refused));
  CHECK(refused == sense::invalid_field_in_parameter_list);
  CHECK_FALSE(parse_reservation(cdb.b.data(), list.data(), list.size() - 1, r, refused));
  CHECK(refused == sense::parameter_list_length_error);
  auto huge = Cdb{0x5f, 7}.be(5, kMaxRegisterAndMoveBytes + 1, 4);
  CHECK(plan_reservation(huge.b.data(), nullptr).sense == sense::parameter_list_length_error);
}

TEST_CASE("REGISTER with SPEC_I_PT registers the initiator ports named too", "[reservations]") {
  Reservations s;
  ReservationRequest r = req(Kind::register_key, 0, 0xa);
  r.specified = {B.initiator, C.initiator};
  const uint32_t generation = s.generation;
  REQUIRE(run(s, A, r) == Status::good);
  CHECK(s.registrations.size() == 3);
  CHECK(s.generation == generation + 1);
  // Through A's target port: B (port 1) holds it, C (port 2) does not.
  CHECK((s.registration_of(B) && s.registration_of(B)->key == 0xa));
  CHECK_FALSE(s.registration_of(C));
  CHECK(s.registration_of(Nexus{C.initiator, A.port}));
  // Registered already through that port: refused (one of them is
  // enough), nothing changes.
  const Nexus F{"iqn.2026-12.test:f,i,0x400001370000", 1};
  Reservations before = s;
  ReservationRequest again = req(Kind::register_key, 0, 0xd);
  again.specified = {"iqn.2026-12.test:d,i,0x400001370000", B.initiator};
  CHECK(refusal(s, F, again) == sense::invalid_field_in_parameter_list);
  CHECK(s == before);
  // Named twice, or by a registered sender: refused.
  again.specified = {"iqn.2026-12.test:d,i,0x400001370000", "iqn.2026-12.test:d,i,0x400001370000"};
  CHECK(refusal(s, F, again) == sense::invalid_field_in_parameter_list);
  ReservationRequest registered = req(Kind::register_key, 0xa, 0xe);
  registered.specified = {"iqn.2026-12.test:d,i,0x400001370000"};
  CHECK(refusal(s, A, registered) == sense::invalid_field_in_parameter_list);
  // ALL_TG_PT: through every port.
  ReservationRequest all = req(Kind::register_key, 0, 0xd);
  all.all_ports = true;
  all.specified = {"iqn.2026-12.test:e,i,0x400001370000"};
  REQUIRE(run(s, Nexus{"iqn.2026-12.test:g,i,0x400001370000", 2}, all) == Status::good);
  CHECK(s.registration_of(Nexus{"iqn.2026-12.test:e,i,0x400001370000", 7}));
  // On the wire: 28 bytes and the TransportIDs, their lengths exact.
  std::vector<uint8_t> list(28, 0);
  list[15] = 0xa;
  list[20] = 0x08;  // SPEC_I_PT
  const std::string port = "iqn.2026-12.test:d,i,0x400001370000";
  std::vector<uint8_t> tid(4 + 36, 0);
  tid[0] = 0x45;
  tid[3] = 36;
  std::copy(port.begin(), port.end(), tid.begin() + 4);
  for (int i = 0; i < 2; ++i) list.insert(list.end(), tid.begin(), tid.end());
  list[27] = static_cast<uint8_t>(2 * tid.size());
  auto cdb = Cdb{0x5f, 0}.be(5, static_cast<uint32_t>(list.size()), 4);
  CHECK(plan_reservation(cdb.b.data(), nullptr).data_out == list.size());
  ReservationRequest parsed;
  Sense refused;
  REQUIRE(parse_reservation(cdb.b.data(), list.data(), list.size(), parsed, refused));
  CHECK(parsed.specified == std::vector<std::string>{port, port});
  list[27] = static_cast<uint8_t>(2 * tid.size() - 1);  // the lengths disagree
  CHECK_FALSE(parse_reservation(cdb.b.data(), list.data(), list.size(), parsed, refused));
  CHECK(refused == sense::parameter_list_length_error);
  list[27] = static_cast<uint8_t>(2 * tid.size());
  list[28 + tid.size() + 3] = 200;  // the second TransportID runs past the list
  CHECK_FALSE(parse_reservation(cdb.b.data(), list.data(), list.size(), parsed, refused));
  CHECK(refused == sense::invalid_field_in_parameter_list);
  // SPEC_I_PT means nothing to REGISTER AND IGNORE; a long list without it is refused.
  auto ignore = Cdb{0x5f, 6}.be(5, static_cast<uint32_t>(list.size()), 4);
  CHECK(plan_reservation(ignore.b.data(), nullptr).sense == sense::parameter_list_length_error);
  list.resize(24);
  list[20] = 0x08;
  auto plain = Cdb{0x5f, 6}.be(5, 24, 4);
  CHECK_FALSE(parse_reservation(plain.b.data(), list.data(), list.size(), parsed, refused));
  CHECK(refused == sense::invalid_field_in_parameter_list);
}

TEST_CASE("SPEC_I_PT may name a whole initiator device (TransportID format 00b)",
          "[reservations]") {
  auto state = std::make_shared<Reservations>();
  Reservations& s = *state;
  ReservationRequest dev = req(Kind::register_key, 0, 0xf);
  dev.specified = {"iqn.2026-12.test:h"};
  REQUIRE(run(s, A, dev) == Status::good);
  // Each of its ports holds the registration, whatever its ISID, through
  // A's target port; another name that starts alike does not.
  const Nexus H1{"iqn.2026-12.test:h,i,0x400001370000", A.port};
  const Nexus H2{"iqn.2026-12.test:h,i,0x23d000000001", A.port};
  CHECK((s.registration_of(H1) && s.registration_of(H1)->key == 0xf));
  CHECK(s.registration_of(H2) == s.registration_of(H1));
  CHECK_FALSE(s.registration_of(Nexus{"iqn.2026-12.test:hh,i,0x400001370000", A.port}));
  CHECK_FALSE(s.registration_of(Nexus{H1.initiator, 2}));
  // One of its ports reserves, as a registrant.
  REQUIRE(run(s, H2, req(Kind::reserve, 0xf, 0, kWriteExclusive)) == Status::good);
  // A device and one of its ports (either way round) clash: refused, nothing changes.
  Reservations before = s;
  ReservationRequest both = req(Kind::register_key, 0, 0xd);
  both.specified = {"iqn.2026-12.test:k", "iqn.2026-12.test:k,i,0x400001370000"};
  CHECK(refusal(s, B, both) == sense::invalid_field_in_parameter_list);
  both.specified = {"iqn.2026-12.test:k,i,0x400001370000", "iqn.2026-12.test:k"};
  CHECK(refusal(s, B, both) == sense::invalid_field_in_parameter_list);
  both.specified = {"iqn.2026-12.test:h,i,0x999999999999"};  // covered already
  CHECK(refusal(s, B, both) == sense::invalid_field_in_parameter_list);
  CHECK(s == before);
  // READ FULL STATUS gives it as a device: TransportID format 00b, the name.
  LogicalUnit lu;
  lu.reservations = state;
  Plan full = plan(Cdb{0x5e, 3}.be(7, 4096, 2).b.data(), 16, lu, &A);
  REQUIRE(full.status == Status::good);
  const size_t second = 8 + 24 + be(full.data_in, 8 + 20, 4);
  CHECK(be(full.data_in, second, 8) == 0xf);
  CHECK(full.data_in[second + 24] == 0x05);
  CHECK(std::string(reinterpret_cast<const char*>(full.data_in.data() + second + 28)) ==
        "iqn.2026-12.test:h");
  // On the wire: taken in SPEC_I_PT's list, not as REGISTER AND MOVE's.
  std::vector<uint8_t> tid(4 + 20, 0);
  tid[0] = 0x05;
  tid[3] = 20;
  const std::string name = "iqn.2026-12.test:k";
  std::copy(name.begin(), name.end(), tid.begin() + 4);
  std::string port;
  CHECK_FALSE(parse_transport_id(tid.data(), tid.size(), port));
  REQUIRE(parse_transport_id(tid.data(), tid.size(), port, true));
  CHECK(port == name);
  tid[4 + 3] = ',';  // (a ',' would make it read as a port)
  CHECK_FALSE(parse_transport_id(tid.data(), tid.size(), port, true));
}

TEST_CASE("the administrator's clear ends whatever hosts hold, and tells them", "[reservations]") {
  Reservations s;
  REQUIRE(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  REQUIRE(run(s, B, req(Kind::register_key, 0, 0xb)) == Status::good);
  REQUIRE(run(s, B, req(Kind::reserve, 0xb, 0, kExclusiveAccess)) == Status::good);
  const uint32_t generation = s.generation;
  ReservationRequest clear;
  clear.kind = Kind::administrator_clear;
  REQUIRE(apply_request(s, Nexus{}, clear).changed);
  CHECK((s.registrations.empty() && s.type == 0 && s.generation == generation + 1));
  Sense sa, sb;
  REQUIRE((told(s, A, sa) && told(s, B, sb)));
  CHECK((sa == sense::reservations_preempted && sb == sense::reservations_preempted));
  CHECK_FALSE(s.told_abort);
  // An SPC-2 holder too; and nothing to clear changes nothing.
  REQUIRE(run(s, C, req(Kind::reserve_spc2)) == Status::good);
  REQUIRE(apply_request(s, Nexus{}, clear).changed);
  CHECK_FALSE(s.reserved);
  Sense sc;
  CHECK(told(s, C, sc));
  CHECK_FALSE(apply_request(s, Nexus{}, clear).changed);
}

TEST_CASE("RESERVE and RELEASE (SPC-2): one nexus, until it releases, leaves or a reset",
          "[reservations]") {
  Reservations s;
  REQUIRE(run(s, A, req(Kind::reserve_spc2)) == Status::good);
  CHECK(run(s, A, req(Kind::reserve_spc2)) == Status::good);  // again
  CHECK(run(s, B, req(Kind::reserve_spc2)) == Status::reservation_conflict);
  // Another's RELEASE is GOOD and changes nothing.
  auto by_b = apply_request(s, B, req(Kind::release_spc2));
  CHECK(by_b.result == ReservationResult::good);
  CHECK_FALSE(by_b.changed);
  CHECK(s.reserved);
  CHECK(conflicts(kRead.b.data(), s, B));
  CHECK(conflicts(kTur.b.data(), s, B));
  CHECK_FALSE(conflicts(kInquiryCdb.b.data(), s, B));
  CHECK_FALSE(conflicts(kRead.b.data(), s, A));
  // Persistent reservation commands conflict with it too.
  CHECK(run(s, B, req(Kind::register_key, 0, 0xb)) == Status::reservation_conflict);
  REQUIRE(run(s, A, req(Kind::nexus_lost)) == Status::good);
  CHECK_FALSE(s.reserved);
  REQUIRE(run(s, B, req(Kind::reserve_spc2)) == Status::good);
  REQUIRE(run(s, A, req(Kind::reset)) == Status::good);
  CHECK_FALSE(s.reserved);
  // Not while persistent registrations exist; RELEASE is then GOOD.
  REQUIRE(run(s, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  CHECK(run(s, B, req(Kind::reserve_spc2)) == Status::reservation_conflict);
  CHECK(run(s, B, req(Kind::release_spc2)) == Status::good);
}

TEST_CASE("a refused request leaves the state as it was (random requests)", "[reservations]") {
  // Invariants over random requests from three nexuses: a failure changes
  // nothing; PRgeneration never goes back; one registration per nexus; a
  // held reservation names a registration (all-registrants: some exist).
  std::mt19937 rng(20261204);
  const Nexus who[] = {A, B, C};
  const uint64_t keys[] = {0, 0xa, 0xb, 0xc};
  const uint8_t types[] = {0, 1, 2, 3, 5, 6, 7, 8};
  const Kind kinds[] = {Kind::register_key, Kind::reserve,      Kind::release,
                        Kind::clear,        Kind::preempt,      Kind::preempt_and_abort,
                        Kind::register_and_ignore, Kind::reserve_spc2, Kind::release_spc2,
                        Kind::nexus_lost,   Kind::reset};
  Reservations s;
  for (int i = 0; i < 20000; ++i) {
    ReservationRequest r = req(kinds[rng() % std::size(kinds)], keys[rng() % 4], keys[rng() % 4],
                               types[rng() % std::size(types)]);
    const Nexus& n = who[rng() % 3];
    const Reservations before = s;
    ReservationOutcome out = apply_request(s, n, r);
    if (out.result != ReservationResult::good) REQUIRE(s == before);
    REQUIRE(out.changed == !(s == before));
    REQUIRE(s.generation >= before.generation);
    std::set<std::string> seen;
    for (const auto& reg : s.registrations) {
      REQUIRE(reg.key != 0);
      REQUIRE(seen.insert(reg.initiator + "/" + std::to_string(reg.port)).second);
    }
    if (s.type != 0) {
      REQUIRE(!s.registrations.empty());
      if (!sve::all_registrants(s.type)) REQUIRE(s.holder < s.registrations.size());
    }
    if (s.reserved) REQUIRE(s.registrations.empty());
  }
}

TEST_CASE("PERSISTENT RESERVE OUT's parameter list", "[reservations]") {
  std::vector<uint8_t> list(24, 0);
  list[7] = 0x0a;   // key 0xa
  list[15] = 0x0b;  // service action key 0xb
  Cdb out{0x5f, 0x01, 0x03};  // RESERVE, scope 0, EXCLUSIVE ACCESS
  out.be(5, 24, 4);
  ReservationRequest r;
  Sense refused;
  REQUIRE(parse_reservation(out.b.data(), list.data(), list.size(), r, refused));
  CHECK(r.kind == Kind::reserve);
  CHECK(r.type == kExclusiveAccess);
  CHECK(r.key == 0xa);
  CHECK(r.action_key == 0xb);
  // SPEC_I_PT only for a REGISTER (with its TransportIDs); ALL_TG_PT only
  // for a registration.
  list[20] = 0x08;
  CHECK_FALSE(parse_reservation(out.b.data(), list.data(), list.size(), r, refused));
  CHECK(refused == sense::invalid_field_in_parameter_list);
  list[20] = 0x04;
  CHECK_FALSE(parse_reservation(out.b.data(), list.data(), list.size(), r, refused));
  out.at(1, 0x00);  // REGISTER
  REQUIRE(parse_reservation(out.b.data(), list.data(), list.size(), r, refused));
  CHECK(r.all_ports);
  // The list is 24 bytes: the CDB must say so, and it must all have come.
  // (A REGISTER's may be longer, with SPEC_I_PT: its parsing checks.)
  CHECK_FALSE(parse_reservation(out.b.data(), list.data(), 20, r, refused));
  CHECK(refused == sense::parameter_list_length_error);
  Plan p = plan(Cdb{0x5f, 0x01, 0, 0, 0, 0, 0, 0, 32}.b.data(), 16, LogicalUnit{});
  CHECK(p.sense == sense::parameter_list_length_error);
  p = plan(Cdb{0x5f, 0x00, 0, 0, 0, 0, 0, 0, 32}.b.data(), 16, LogicalUnit{});
  CHECK(p.data_out == 32);
  std::vector<uint8_t> longer(32, 0);
  CHECK_FALSE(parse_reservation(Cdb{0x5f, 0x00, 0, 0, 0, 0, 0, 0, 32}.b.data(), longer.data(),
                                longer.size(), r, refused));
  CHECK(refused == sense::parameter_list_length_error);
  p = plan(out.b.data(), 16, LogicalUnit{});
  CHECK(p.flow == Flow::reservation);
  CHECK(p.data_out == 24);
  // REPLACE LOST and beyond: not built.
  CHECK(plan(Cdb{0x5f, 0x08}.be(5, 24, 4).b.data(), 16, LogicalUnit{}).sense ==
        sense::invalid_field_in_cdb);
  // RESERVE(10) for a third party is not built.
  CHECK(plan(Cdb{0x56, 0x10}.b.data(), 16, LogicalUnit{}).sense ==
        sense::invalid_field_in_cdb);
  CHECK(plan(Cdb{0x16}.b.data(), 16, LogicalUnit{}).flow == Flow::reservation);
}

TEST_CASE("PERSISTENT RESERVE IN's answers", "[reservations]") {
  auto state = std::make_shared<Reservations>();
  REQUIRE(run(*state, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  REQUIRE(run(*state, B, req(Kind::register_key, 0, 0xb)) == Status::good);
  REQUIRE(run(*state, B, req(Kind::reserve, 0xb, 0, kWriteExclusive)) == Status::good);
  LogicalUnit lu;
  lu.reservations = state;
  auto in = [&](uint8_t action, uint16_t allocation) {
    return plan(Cdb{0x5e, action}.be(7, allocation, 2).b.data(), 16, lu, &A);
  };
  Plan keys = in(0, 4096);
  REQUIRE(keys.status == Status::good);
  CHECK(be(keys.data_in, 0, 4) == 2);   // PRgeneration
  CHECK(be(keys.data_in, 4, 4) == 16);  // two keys
  CHECK(be(keys.data_in, 8, 8) == 0xa);
  CHECK(be(keys.data_in, 16, 8) == 0xb);
  CHECK(in(0, 12).data_in.size() == 12);  // cut to the allocation length
  Plan reservation = in(1, 4096);
  REQUIRE(reservation.data_in.size() == 24);
  CHECK(be(reservation.data_in, 8, 8) == 0xb);
  CHECK(reservation.data_in[21] == kWriteExclusive);
  Plan caps = in(2, 4096);
  REQUIRE(caps.data_in.size() == 8);
  CHECK(caps.data_in[5] == 0x01);  // EX_AC_AR among the types
  Plan full = in(3, 4096);
  REQUIRE(full.status == Status::good);
  // The second descriptor is the holder's, with its iSCSI transport id.
  const size_t second = 8 + 24 + be(full.data_in, 8 + 20, 4);
  CHECK(be(full.data_in, second, 8) == 0xb);
  CHECK((full.data_in[second + 12] & 0x01) == 1);
  CHECK(full.data_in[second + 24] == 0x45);
  CHECK(std::string(full.data_in.begin() + second + 28,
                    full.data_in.begin() + second + 28 + B.initiator.size()) == B.initiator);
  CHECK(in(4, 4096).sense == sense::invalid_field_in_cdb);
  // A write from a registrant that does not hold it conflicts; from no
  // nexus (not checked) it is planned.
  CHECK(plan(kWrite.b.data(), 16, lu, &A).status == Status::reservation_conflict);
  lu.blocks = 100;
  CHECK(plan(kWrite.b.data(), 16, lu, &B).io);
  CHECK(plan(kWrite.b.data(), 16, lu).io);
}

TEST_CASE("reservations are cluster state: they round-trip with the model", "[reservations]") {
  ClusterModel m;
  VdiskReservations r;
  r.vdisk = 7;
  REQUIRE(run(r.state, A, req(Kind::register_key, 0, 0xa)) == Status::good);
  REQUIRE(run(r.state, A, req(Kind::reserve, 0xa, 0, kExclusiveAccess)) == Status::good);
  r.state.aptpl = true;
  m.reservations.push_back(r);
  auto back = decode_config(encode_config(m));
  REQUIRE(back);
  const Reservations* got = back.value().find_reservations(7);
  REQUIRE(got);
  CHECK(*got == r.state);
  CHECK(back.value().find_reservations(8) == nullptr);
}

// svectl: the SVE admin client.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <functional>
#include <map>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_client.hpp"
#include "admin/admin_protocol.hpp"
#include "io/tls/admin_tls.hpp"
#include "tools/svectl/chaos_run.hpp"
#include "tools/svectl/copy_wait.hpp"
#include "tools/svectl/credentials.hpp"
#include "tools/svectl/render.hpp"
#include "tools/svectl/shell.hpp"
#include "util/size.hpp"

using namespace sve;
using nlohmann::json;

namespace {

// Option checks: each returns "" or what is wrong (CLI11 names the option).
std::string check_size(const std::string& text) {
  return parse_size(text) ? std::string()
                          : "invalid size '" + text + "': expected a number with K, M, G or T";
}

// audit list --since: Unix seconds, a UTC date and time
// (YYYY-MM-DD[THH:MM[:SS]]), or an age (30m, 2h, 7d); as Unix seconds.
std::optional<uint64_t> parse_since(const std::string& text, uint64_t now) {
  if (text.empty()) return std::nullopt;
  if (text.find_first_not_of("0123456789") == std::string::npos)
    return text.size() <= 12 ? std::optional<uint64_t>(std::stoull(text)) : std::nullopt;
  char unit = text.back();
  std::string digits = text.substr(0, text.size() - 1);
  if (std::string("smhd").find(unit) != std::string::npos && !digits.empty() && digits.size() <= 6 &&
      digits.find_first_not_of("0123456789") == std::string::npos) {
    uint64_t n = std::stoull(digits);
    uint64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
    return n * scale > now ? 0 : now - n * scale;
  }
  std::tm tm{};
  const char* end = nullptr;
  for (const char* format : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"}) {
    tm = std::tm{};
    end = strptime(text.c_str(), format, &tm);
    if (end && *end == '\0') return static_cast<uint64_t>(timegm(&tm));
  }
  return std::nullopt;
}

std::string check_node_id(const std::string& text) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos)
    return "'" + text + "' is not a node id";
  return {};
}

std::string check_rate(const std::string& text) {
  char* end = nullptr;
  double rate = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end || !(rate > 0))
    return "--rate is faults per minute, a positive number";
  return {};
}

// N% (or N) from 0 to 100.
std::string check_percent(const std::string& text) {
  std::string digits = !text.empty() && text.back() == '%' ? text.substr(0, text.size() - 1) : text;
  if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(digits) > 100)
    return "'" + text + "' is not a percentage from 0% to 100%";
  return {};
}
uint32_t percent(const std::string& text) {
  return static_cast<uint32_t>(std::stoul(text.back() == '%' ? text.substr(0, text.size() - 1) : text));
}
std::string check_size_or_percent(const std::string& text) {
  if (!text.empty() && text.back() == '%') return check_percent(text);
  return check_size(text);
}

uint32_t node_id(const std::string& text) { return static_cast<uint32_t>(std::stoul(text)); }

// What the command line asked for: an admin request, or one of the two
// commands that run here (chaos run, shell) with the rest of the line.
struct Command {
  json request;
  enum Kind { admin, chaos_run, shell, login, logout } kind = admin;
  std::vector<std::string> rest;
  bool wait = false;  // fcmap/fcconsistgrp start|show --wait: follow the copy to its end
  bool prep = false;  // fcmap/fcconsistgrp start --prep: prepare first
};

// Every command of the admin API as a subcommand pair (noun, verb); each
// fills the request when it is the one given.
class CommandLine {
 public:
  CommandLine() {
    app_.name("svectl");
    app_.description("svectl: the SVE admin client");
    app_.set_help_flag("-h,--help", "print this help and exit");
    app_.add_option("--admin", admin_, "the node's admin API, HOST:PORT (default $SVE_ADMIN, "
                                       "else 127.0.0.1:10810)");
    app_.add_option("--tls-ca", tls_ca_, "speak TLS to the admin API (sved --admin-certificates), "
                                         "trusting the CA certificates in this PEM file "
                                         "(default $SVE_TLS_CA)");
    app_.add_flag("--json", json_, "print the result as JSON");
    app_.add_option("--user", user_, "send the command as this administrator (password from "
                                     "$SVE_PASSWORD, else asked); without it, the session "
                                     "svectl login saved is used");
    app_.require_subcommand(1);
    app_.allow_extras();
    app_.footer("sizes take K, M, G, T suffixes (powers of 1024)");

    auto* mdisk = noun("mdisk", "managed disks: files, block devices, memory:SIZE, null:SIZE");
    auto* add = verb(mdisk, "add", "add an mdisk");
    text(add, "NAME");
    text(add, "PATH", "PATH|memory:SIZE|null:SIZE");
    bind(add, {{"NAME", "name"}, {"PATH", "path"}});
    verb(mdisk, "list", "list the mdisks");
    named(verb(mdisk, "remove", "remove an unused mdisk"));

    auto* pool = noun("pool", "storage pools of extents over mdisks");
    auto* pcreate = verb(pool, "create", "create a pool over the mdisks given");
    text(pcreate, "NAME");
    pcreate->add_option("MDISK", mdisks_, "its mdisks")->required();
    flag_size(pcreate, "--extent-size", "extent_size", "extent size (default 16M)");
    on(pcreate, [this] {
      r_["name"] = pos_["NAME"];
      r_["mdisks"] = mdisks_;
    });
    verb(pool, "list", "list the pools");
    named(verb(pool, "check", "check a pool's extents and its thin vdisks' maps"));
    named(verb(pool, "delete", "delete an unused pool"));
    auto* padd = verb(pool, "addmdisk", "add unused mdisks to a pool (more capacity, online)");
    text(padd, "NAME");
    padd->add_option("MDISK", mdisks_, "the mdisks to add")->required();
    on(padd, [this] {
      r_["name"] = pos_["NAME"];
      r_["mdisks"] = mdisks_;
    });

    auto* vdisk = noun("vdisk", "virtual disks");
    auto* vcreate = verb(vdisk, "create", "create a vdisk");
    text(vcreate, "NAME");
    flag_text(vcreate, "--pool", "pool", "the pool it takes extents from", true);
    flag_size(vcreate, "--size", "size", "its size", true);
    flag_text(vcreate, "--policy", "policy", "striped (default) or sequential");
    placement(vcreate);
    bind(vcreate, {{"NAME", "name"}});
    // Thin provisioning, with SVC's names and defaults (docs/thin.md).
    vcreate->add_flag("--thin", thin_, "allocate grains as hosts write (may exceed the pool)");
    flag_size(vcreate, "--grain", "grain", "thin: grain size, 32K|64K|128K|256K (default 256K)");
    vcreate->add_option("--rsize", rsize_, "thin: real capacity at first, SIZE or N% (default 2%)")
        ->check(check_size_or_percent);
    thin_settings(vcreate);
    on(vcreate, [this, vcreate] {
      if (thin_) r_["thin"] = true;
      if (vcreate->count("--rsize")) {
        if (rsize_.back() == '%') r_["rsize_pct"] = percent(rsize_);
        else r_["rsize"] = rsize_;
      }
    });
    verb(vdisk, "list", "list the vdisks");
    named(verb(vdisk, "show", "a vdisk and its cache"));
    auto* expand = verb(vdisk, "expand", "grow a vdisk");
    text(expand, "NAME");
    flag_size(expand, "--size", "size", "its new size", true);
    bind(expand, {{"NAME", "name"}});
    named(verb(vdisk, "delete", "delete a vdisk"));
    auto* vset = verb(vdisk, "set", "change a vdisk's properties");
    text(vset, "NAME");
    auto* ro = vset->add_flag("--read-only", read_only_, "hosts may only read it");
    auto* rw = vset->add_flag("--read-write", read_write_, "hosts may write it again");
    ro->excludes(rw);
    thin_settings(vset);
    on(vset, [this] {
      r_["name"] = pos_["NAME"];
      // None: the node says what is missing.
      if (read_only_ || read_write_) r_["read_only"] = read_only_;
    });
    named(verb(vdisk, "check", "check a thin vdisk's map against its grains in use"));
    named(verb(vdisk, "clear-reservations",
               "end the SCSI reservations and registrations hosts left on a vdisk"));
    auto* move = verb(vdisk, "move", "move a vdisk to another I/O group or preferred node");
    text(move, "NAME");
    placement(move);
    bind(move, {{"NAME", "name"}});

    auto* iogrp = noun("iogrp", "I/O groups: two nodes that mirror each other's cache");
    auto* gcreate = verb(iogrp, "create", "pair two nodes");
    text(gcreate, "NAME");
    gcreate->add_option("NODE", nodes_, "its two nodes")->required()->expected(2)->check(
        check_node_id);
    on(gcreate, [this] {
      r_["name"] = pos_["NAME"];
      r_["nodes"] = {node_id(nodes_[0]), node_id(nodes_[1])};
    });
    verb(iogrp, "list", "list the I/O groups");
    named(verb(iogrp, "delete", "delete an I/O group that serves no vdisk"));

    // Point-in-time copies, with SVC's FlashCopy names (docs/flashcopy.md).
    auto* fcmap = noun("fcmap", "point-in-time copy mappings (FlashCopy)");
    auto* fcreate = verb(fcmap, "create", "map a source vdisk onto a target of the same size");
    flag_text(fcreate, "--source", "source", "the vdisk copied", true);
    flag_text(fcreate, "--target", "target", "the vdisk that becomes its point in time", true);
    flag_text(fcreate, "--name", "name", "its name (default fcmapN)");
    copy_settings(fcreate);
    flag_size(fcreate, "--grain", "grain", "64K or 256K (default 256K)");
    fcreate->add_flag("--incremental", incremental_,
                      "a restart copies only the grains changed since the last start");
    flag_text(fcreate, "--consistgrp", "consistgrp", "the consistency group it joins");
    on(fcreate, [this] {
      if (incremental_) r_["incremental"] = true;
    });
    verb(fcmap, "list", "list the mappings, their states and progress");
    waits(named(verb(fcmap, "show", "a mapping, its state and progress")));
    named(verb(fcmap, "prepare", "empty the caches of source and target, ready to start"));
    preps(waits(named(verb(fcmap, "start", "make the point in time of a prepared mapping"))));
    forced(named(verb(fcmap, "stop", "stop a mapping (a target not fully copied goes offline)")),
           "at once, without copying what later mappings read through its target: they "
           "stop too");
    forced(named(verb(fcmap, "delete", "delete a mapping")),
           "even while it copies (the target is left part copied)");
    auto* fset = verb(fcmap, "set", "change a mapping's copy rate, autodelete or group");
    named(fset);
    copy_settings(fset);
    auto* join = fset->add_option("--consistgrp", flags_["consistgrp"], "join this consistency group");
    auto* leave = fset->add_flag("--no-consistgrp", no_consistgrp_, "leave its consistency group");
    join->excludes(leave);
    on(fset, [this, fset] {
      if (fset->count("--consistgrp")) r_["consistgrp"] = flags_["consistgrp"];
      if (no_consistgrp_) r_["no_consistgrp"] = true;
    });

    // Consistency groups: mappings that start at one instant.
    auto* group = noun("fcconsistgrp", "consistency groups of mappings, started at one instant");
    auto* gcreate2 = verb(group, "create", "create a consistency group");
    gcreate2->add_option("NAME", pos_["GROUP"], "its name (default fccstgrpN)");
    on(gcreate2, [this, gcreate2] {
      if (gcreate2->count("NAME")) r_["name"] = pos_["GROUP"];
    });
    verb(group, "list", "list the groups, their states and mappings");
    waits(named(verb(group, "show", "a group, its state and mappings")));
    named(verb(group, "prepare", "prepare every mapping of the group"));
    preps(waits(named(
        verb(group, "start", "the point in time of every mapping of a prepared group"))));
    forced(named(verb(group, "stop", "stop every mapping of the group")),
           "at once, and the mappings that read through their targets");
    forced(named(verb(group, "delete", "delete a group")),
           "even with mappings (they stay, standalone)");

    // Hosts, and the vdisks mapped to them (docs/security.md).
    auto* host = noun("host", "hosts: which vdisks each reaches on the host ports");
    host_ids(named(verb(host, "create", "define a host, and how it is known")));
    verb(host, "list", "list the hosts and their vdisks");
    named(verb(host, "show", "a host, how it is known, and its vdisks with their LUNs"));
    auto* hset = host_ids(named(verb(host, "set", "change how a host is known")));
    auto* no_address = hset->add_flag("--no-address", no_address_, "forget its addresses");
    no_address->excludes(hset->get_option("--address"));
    on(hset, [this] {
      if (no_address_) r_["addresses"] = json::array();
    });
    auto* chap = named(verb(host, "chap", "set (or with \"\" remove) its iSCSI CHAP secret"));
    chap->add_option("--secret", secret_, "12 to 255 printable characters")->required();
    on(chap, [this] { r_["secret"] = secret_; });
    forced(named(verb(host, "delete", "delete a host")), "even with vdisks mapped (they are unmapped)");
    auto* vmap = verb(vdisk, "map", "let a host reach a vdisk (SVC's mkvdiskhostmap)");
    text(vmap, "NAME", "the vdisk");
    text(vmap, "HOST", "the host");
    bind(vmap, {{"NAME", "name"}, {"HOST", "host"}});
    vmap->add_option("--lun", lun_, "its LUN for the host (default the lowest free)")
        ->check(CLI::Range(0, 16383));
    vmap->add_flag("--read-only", read_only_, "the host may only read it");
    forced(vmap, "map it to a second host (they must coordinate their writes)");
    on(vmap, [this, vmap] {
      if (vmap->count("--lun")) r_["lun"] = lun_;
      if (read_only_) r_["read_only"] = true;
    });
    auto* vunmap = verb(vdisk, "unmap", "take a vdisk from a host (its connections to it close)");
    text(vunmap, "NAME", "the vdisk");
    text(vunmap, "HOST", "the host");
    bind(vunmap, {{"NAME", "name"}, {"HOST", "host"}});

    // Administrators (docs/security.md).
    auto* user = noun("user", "administrators and their roles");
    auto* ucreate = named(verb(user, "create", "add an administrator"));
    ucreate->add_option("--role", role_, "securityadmin, administrator, copyoperator or monitor")
        ->required();
    on(ucreate, [this] { r_["role"] = role_; });
    passwords(ucreate);
    verb(user, "list", "list the administrators and their roles");
    named(verb(user, "delete", "remove an administrator"));
    passwords(named(verb(user, "passwd", "change an administrator's password (their sessions end)")));
    verb(user, "whoami", "who this node takes you for");
    // The audit log (docs/security.md).
    auto* audit = noun("audit", "who changed what from where, and who was refused");
    auto* alist = verb(audit, "list", "the audit log, oldest first");
    alist->add_option("--since", since_,
                      "entries since T: Unix seconds, YYYY-MM-DD[THH:MM[:SS]] (UTC), or an age "
                      "such as 30m, 2h, 7d");
    alist->add_option("--count", count_, "at most the newest N entries (1-1000)")
        ->check(CLI::Range(1, 1000));
    on(alist, [this] {
      if (!since_.empty()) {
        auto since = parse_since(since_, static_cast<uint64_t>(std::time(nullptr)));
        if (!since) throw CLI::ValidationError("--since", "'" + since_ + "' is not a time");
        r_["since"] = *since;
      }
      if (count_) r_["count"] = count_;
    });
    auto* login = app_.add_subcommand("login", "log in as --user and save a session (24 h) for "
                                               "this admin address");
    login->fallthrough();
    login->callback([this] {
      command_.kind = Command::login;
      r_ = json{{"cmd", "session.login"}};
    });
    auto* logout = app_.add_subcommand("logout", "forget the saved session");
    logout->fallthrough();
    logout->callback([this] { command_.kind = Command::logout; });

    auto* node = noun("node", "this node, and the cluster's nodes");
    verb(node, "show", "this node's cache: size, dirty bytes, mode and why");
    verb(node, "stats", "the data path per core: scheduler, ring, buffer and request pools");
    verb(node, "list", "the cluster's nodes: online, offline, stalled; boss; lease left");
    auto* nadd = verb(node, "add", "add a node to the cluster");
    nadd->add_option("--id", id_, "its node id")->required()->check(check_node_id);
    text(nadd, "ADDRESS", "its cluster address, HOST:PORT");
    flag_text(nadd, "--node-admin", "node_admin",
              "its admin API, HOST:PORT: the cluster hands it the cluster key there", true);
    on(nadd, [this] {
      r_["id"] = node_id(id_);
      r_["address"] = pos_["ADDRESS"];
    });
    auto* nremove = verb(node, "remove", "remove a node from the cluster");
    nremove->add_option("ID", id_, "its node id")->required()->check(check_node_id);
    on(nremove, [this] { r_["id"] = node_id(id_); });

    auto* cluster = noun("cluster", "the cluster");
    auto* ccreate = named(verb(cluster, "create", "found a cluster on this node"));
    ccreate->add_option("--first-user", first_user_,
                        "also make its first administrator (a securityadmin), with "
                        "--password, SVE_NEW_PASSWORD or a prompt");
    ccreate->add_option("--password", password_, "the first user's password (else asked)");
    on(ccreate, [this, ccreate] {
      if (first_user_.empty()) {
        if (ccreate->count("--password"))
          throw CLI::ValidationError("--password", "is the --first-user's: give one");
        return;
      }
      r_["first_user"] = first_user_;
      if (ccreate->count("--password")) {
        r_["password"] = password_;
      } else if (const char* given = std::getenv("SVE_NEW_PASSWORD"); given && *given) {
        r_["password"] = given;
      } else {
        auto typed = read_password("password for " + first_user_ + ": ");
        if (!typed) throw CLI::ValidationError("--password", typed.error().message);
        r_["password"] = typed.value();
      }
    });
    verb(cluster, "status", "boss, members, quorum, committed events, lease");
    auto* daemon = noun("daemon", "the node's processes");
    verb(daemon, "status", "the I/O process: pid, restarts, last exit");

    auto* chaos = noun("chaos", "the chaos monkey (nodes started with --enable-chaos)");
    auto* cstart = verb(chaos, "start", "inject seeded faults at this node");
    cstart->add_option("--seed", seed_, "the schedule's seed (default 1)");
    flag_text(cstart, "--faults", "faults", "KIND,... or all (default all)");
    cstart->add_option("--rate", rate_, "faults per minute (default 6)")->check(check_rate);
    on(cstart, [this, cstart] {
      r_["seed"] = seed_;
      if (cstart->count("--rate")) r_["rate"] = std::strtod(rate_.c_str(), nullptr);
    });
    verb(chaos, "stop", "stop this node's monkey");
    verb(chaos, "report", "the faults so far");
    auto* inject = verb(chaos, "inject", "one fault now, by hand");
    text(inject, "KIND");
    inject->add_option("--duration", duration_, "how long it lasts, ms");
    inject->add_option("--target", target_, "which mdisk or peer");
    inject->add_option("--intensity", intensity_,
                       "a delay in ms (net-delay, channel-delay) or a percentage (net-drop, "
                       "net-duplicate)");
    on(inject, [this, inject] {
      r_["kind"] = pos_["KIND"];
      if (inject->count("--duration")) r_["duration_ms"] = duration_;
      if (inject->count("--target")) r_["target"] = target_;
      if (inject->count("--intensity")) r_["intensity"] = intensity_;
    });
    auto* run = chaos->add_subcommand(
        "run", "monkeys on every node and a verifying workload; exits non-zero if a write "
               "was lost or a read was wrong (--duration SECONDS [--seed S] [--faults ...] "
               "[--rate R] [--nodes ADMIN,...] [--vdisk NAME])");
    run->prefix_command();
    run->fallthrough(false);
    run->callback([this, run] {
      command_.kind = Command::chaos_run;
      command_.rest = run->remaining();
    });
    auto* shell = app_.add_subcommand(
        "shell", "the actor debug shell ([--node HOST:PORT] [-c COMMAND]: actors, inspect, "
                 "trace, cluster)");
    shell->prefix_command();
    shell->fallthrough(false);
    shell->callback([this, shell] {
      command_.kind = Command::shell;
      command_.rest = shell->remaining();
    });
  }

  // Throws CLI::ParseError (CLI::CallForHelp for --help).
  Command parse(int argc, char** argv) {
    app_.parse(argc, argv);
    check_words();
    command_.request = std::move(r_);
    return std::move(command_);
  }
  int exit(const CLI::ParseError& e) { return app_.exit(e); }
  std::string admin() const { return admin_; }
  bool as_json() const { return json_; }
  const std::string& user() const { return user_; }
  const std::string& tls_ca() const { return tls_ca_; }

 private:
  CLI::App* noun(const char* name, const char* what) {
    auto* n = app_.add_subcommand(name, what);
    n->require_subcommand(0, 1);  // checked in check_words(), to name a wrong one
    n->fallthrough();  // --admin and --json may come after the command too
    return n;
  }
  // Words nothing took: a verb that is none, or one too many.
  void check_words() {
    auto rest = app_.remaining();
    auto chosen = app_.get_subcommands();
    if (chosen.empty()) return;  // CLI11 says a command is required
    CLI::App* n = chosen[0];
    bool whole = n->get_name() == "shell" || n->get_name() == "login" || n->get_name() == "logout";
    if (!whole && n->get_subcommands().empty()) {
      throw CLI::ValidationError(rest.empty() ? "'" + n->get_name() + "' needs a command (svectl " +
                                                    n->get_name() + " --help lists them)"
                                              : "unknown command '" + n->get_name() + " " +
                                                    rest[0] + "'");
    }
    if (!rest.empty()) throw CLI::ValidationError("unexpected argument '" + rest[0] + "'");
  }
  // A verb whose request starts as {"cmd": "noun.verb"}.
  CLI::App* verb(CLI::App* noun, const char* name, const char* what) {
    auto* v = noun->add_subcommand(name, what);
    v->fallthrough();
    std::string cmd = noun->get_name() + "." + name;
    v->callback([this, cmd] {
      json fields = std::move(r_);
      r_ = json{{"cmd", cmd}};
      for (auto& [k, val] : fields.items()) r_[k] = val;
      for (auto& fill : fills_[cmd]) fill();
    });
    return v;
  }
  void on(CLI::App* verb, std::function<void()> fill) {
    std::string cmd = verb->get_parent()->get_name() + "." + verb->get_name();
    fills_[cmd].push_back(std::move(fill));
  }
  void text(CLI::App* verb, const std::string& name, const std::string& what = "") {
    verb->add_option(name, pos_[name], what)->required();
  }
  // A verb that takes one NAME.
  CLI::App* named(CLI::App* verb) {
    text(verb, "NAME");
    bind(verb, {{"NAME", "name"}});
    return verb;
  }
  void bind(CLI::App* verb, std::vector<std::pair<std::string, std::string>> fields) {
    on(verb, [this, fields] {
      for (auto& [pos, key] : fields) r_[key] = pos_[pos];
    });
  }
  void flag_text(CLI::App* verb, const std::string& flag, const std::string& key,
                 const std::string& what, bool required = false) {
    auto* o = verb->add_option(flag, flags_[flag + key], what);
    if (required) o->required();
    on(verb, [this, verb, flag, key] {
      if (verb->count(flag)) r_[key] = flags_[flag + key];
    });
  }
  void flag_size(CLI::App* verb, const std::string& flag, const std::string& key,
                 const std::string& what, bool required = false) {
    flag_text(verb, flag, key, what, required);
    verb->get_option(flag)->check(check_size);
  }
  // --warning N% and --autoexpand / --no-autoexpand of a thin vdisk.
  void thin_settings(CLI::App* verb) {
    verb->add_option("--warning", warning_, "thin: warn when this much of its size is used, N% "
                                            "(default 80%; 0: never)")
        ->check(check_percent);
    auto* on_flag = verb->add_flag("--autoexpand", autoexpand_, "thin: grow its real capacity "
                                                                "from the pool as needed (default)");
    auto* off_flag = verb->add_flag("--no-autoexpand", no_autoexpand_,
                                    "thin: keep its real capacity (writes fail with ENOSPC when full)");
    on_flag->excludes(off_flag);
    on(verb, [this, verb] {
      if (verb->count("--warning")) r_["warning"] = percent(warning_);
      if (autoexpand_ || no_autoexpand_) r_["autoexpand"] = autoexpand_;
    });
  }
  // --copyrate N and --autodelete / --no-autodelete of a mapping.
  void copy_settings(CLI::App* verb) {
    verb->add_option("--copyrate", copy_rate_,
                     "background copy rate 0..150 (0: none, a snapshot; 50: 2 MiB/s, each 10 "
                     "more doubles it; default 50)")
        ->check(CLI::Range(0, 150));
    verb->add_option("--cleanrate", clean_rate_,
                     "how fast a stop copies the grains later mappings of its target still "
                     "need, 0..150 on the copy rate's scale (default 50)")
        ->check(CLI::Range(0, 150));
    auto* on_flag = verb->add_flag("--autodelete", autodelete_, "delete it once copied");
    auto* off_flag = verb->add_flag("--no-autodelete", no_autodelete_, "keep it once copied");
    on_flag->excludes(off_flag);
    on(verb, [this, verb] {
      if (verb->count("--copyrate")) r_["copy_rate"] = copy_rate_;
      if (verb->count("--cleanrate")) r_["clean_rate"] = clean_rate_;
      if (autodelete_ || no_autodelete_) r_["autodelete"] = autodelete_;
    });
  }
  // --force, sent as "force".
  void forced(CLI::App* verb, const char* what) {
    verb->add_flag("--force", force_, what);
    on(verb, [this] {
      if (force_) r_["force"] = true;
    });
  }
  // --wait: follow the copy until it ends (copy_wait.cpp).
  CLI::App* waits(CLI::App* verb) {
    verb->add_flag("--wait", command_.wait,
                   "follow the copy to its end: a progress bar on a terminal, else a line per "
                   "percent");
    return verb;
  }
  // --prep: prepare it first, and start once prepared (copy_wait.cpp).
  CLI::App* preps(CLI::App* verb) {
    verb->add_flag("--prep", command_.prep,
                   "prepare it first (empty the caches) and start once it is prepared");
    return verb;
  }
  // --nbd-identity, --address (again for more) and --iqn: how a host is known.
  CLI::App* host_ids(CLI::App* verb) {
    flag_text(verb, "--nbd-identity", "nbd_identity",
              "its NBD TLS identity (PSK identity or certificate name)");
    verb->add_option("--address", addresses_,
                     "an IP address or IP/PREFIX it connects from in plain text (again for more)");
    flag_text(verb, "--iqn", "iqn", "its iSCSI initiator name");
    on(verb, [this, verb] {
      if (verb->count("--address")) r_["addresses"] = addresses_;
    });
    return verb;
  }
  // --password P (else asked on the terminal, or $SVE_NEW_PASSWORD).
  CLI::App* passwords(CLI::App* verb) {
    verb->add_option("--password", password_, "the password (else asked)");
    on(verb, [this, verb] {
      if (verb->count("--password")) {
        r_["password"] = password_;
      } else if (const char* given = std::getenv("SVE_NEW_PASSWORD"); given && *given) {
        r_["password"] = given;
      } else {
        auto typed = read_password("new password: ");
        if (!typed) throw CLI::ValidationError("--password", typed.error().message);
        r_["password"] = typed.value();
      }
    });
    return verb;
  }
  // --iogrp GROUP and --node N, where a vdisk goes.
  void placement(CLI::App* verb) {
    flag_text(verb, "--iogrp", "iogrp", "its I/O group");
    verb->add_option("--node", node_, "its preferred node")->check(check_node_id);
    on(verb, [this, verb] {
      if (verb->count("--node")) r_["node"] = node_id(node_);
    });
  }

  CLI::App app_;
  std::string admin_;
  bool json_ = false;
  json r_ = json::object();
  Command command_;
  std::map<std::string, std::string> pos_, flags_;
  std::map<std::string, std::vector<std::function<void()>>> fills_;
  std::vector<std::string> mdisks_, nodes_, addresses_;
  std::string secret_, user_, role_, password_, since_, first_user_, tls_ca_;
  unsigned count_ = 0;
  uint32_t lun_ = 0;
  bool no_address_ = false;
  bool read_only_ = false, read_write_ = false;
  bool thin_ = false, autoexpand_ = false, no_autoexpand_ = false;
  bool autodelete_ = false, no_autodelete_ = false, force_ = false;
  bool incremental_ = false, no_consistgrp_ = false;
  uint32_t copy_rate_ = 50, clean_rate_ = 50;
  std::string rsize_, warning_;
  std::string id_, node_, rate_;
  uint64_t seed_ = 1;
  uint32_t duration_ = 0, target_ = 0, intensity_ = 0;
};

}  // namespace

namespace {

int run(int argc, char** argv) {
  CommandLine line;
  Command command;
  try {
    command = line.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return line.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "svectl: " << e.what() << " (svectl --help for usage)\n";
    return 2;
  }
  std::string admin = !line.admin().empty()    ? line.admin()
                      : std::getenv("SVE_ADMIN") ? std::getenv("SVE_ADMIN")
                                                 : "127.0.0.1:" + std::to_string(kDefaultAdminPort);
  auto address = parse_address(admin);
  if (!address) {
    std::cerr << "svectl: " << address.error().message << " (svectl --help for usage)\n";
    return 2;
  }
  // TLS, when the node's admin API speaks it.
  std::string ca = !line.tls_ca().empty()      ? line.tls_ca()
                   : std::getenv("SVE_TLS_CA") ? std::getenv("SVE_TLS_CA")
                                               : "";
  if (!ca.empty()) {
    auto secure = admin_tls_client(ca);
    if (!secure) {
      std::cerr << "svectl: --tls-ca: " << secure.error().message << "\n";
      return 2;
    }
    set_admin_transport(std::move(secure.value()));
  }
  // Who the node is to take us for: --user (with a password), else the
  // session `svectl login` saved for this address, else nobody (loopback).
  if (command.kind == Command::logout) {
    bool had = forget_token(address.value());
    std::cout << (had ? "logged out of " : "no session saved for ") << admin << "\n";
    return 0;
  }
  if (!line.user().empty()) {
    auto password = read_password("password for " + line.user() + ": ");
    if (!password) {
      std::cerr << "svectl: " << password.error().message << "\n";
      return 2;
    }
    set_admin_credentials({{"user", line.user()}, {"password", password.value()}});
  } else if (command.kind == Command::login) {
    std::cerr << "svectl: login needs --user NAME\n";
    return 2;
  } else if (auto token = saved_token(address.value())) {
    set_admin_credentials({{"token", *token}});
  }
  if (command.kind == Command::login) {
    auto reply = admin_call(address.value(), command.request);
    if (!reply || !reply->is_object() || !reply->value("ok", false)) {
      std::cerr << "svectl: "
                << (!reply ? reply.error().message
                           : reply->is_object() ? reply->value("error", "unknown error")
                                                : std::string("unknown error"))
                << "\n";
      return 1;
    }
    const json& r = (*reply)["result"];
    if (auto st = save_token(address.value(), r.value("token", "")); !st) {
      std::cerr << "svectl: " << st.error().message << "\n";
      return 1;
    }
    std::cout << "logged in to " << admin << " as " << r.value("user", "") << " ("
              << r.value("role", "") << "); the session is saved in "
              << token_path(address.value()) << "\n";
    return 0;
  }
  if (command.kind == Command::chaos_run)
    return run_chaos(address.value(), command.rest, line.as_json());
  if (command.kind == Command::shell)
    return run_shell(address.value(), command.rest, line.as_json());
  const json& request = command.request;
  if (command.prep)
    if (int rc = prepare_first(address.value(), request); rc != 0) return rc;
  auto reply = admin_call(address.value(), request);
  if (!reply) {
    std::cerr << "svectl: " << reply.error().message << "\n";
    return 1;
  }
  if (!reply->is_object() || !reply->value("ok", false)) {
    std::string error = reply->is_object() && reply->contains("error") &&
                                (*reply)["error"].is_string()
                            ? (*reply)["error"].get<std::string>()
                            : "unknown error";
    std::cerr << "svectl: " << error << "\n";
    return 1;
  }
  if (line.as_json() && !command.wait)
    std::cout << (*reply)["result"].dump(2) << "\n";
  else if (!line.as_json())
    render_result(request["cmd"], (*reply)["result"]);
  if (command.wait) return wait_for_copy(address.value(), request, line.as_json());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // say, an argument that is not UTF-8
    std::cerr << "svectl: " << e.what() << "\n";
    return 2;
  }
}

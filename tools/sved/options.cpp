#include "tools/sved/options.hpp"

#include <cstdlib>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>
#include <thread>

#include <CLI/CLI.hpp>

#include "util/size.hpp"

namespace sve {

namespace {

// A configuration file: one option a line, as on the command line without
// the leading dashes ("cache-size 256M", "cache-size = 256M", "no-pin"),
// blank lines and # comments ignored.
Result<std::vector<std::string>> read_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("cannot read configuration file " + path, ENOENT);
  std::vector<std::string> args;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string key, value, extra;
    if (!(words >> key)) continue;
    if (auto eq = key.find('='); eq != std::string::npos) {  // key=value
      value = key.substr(eq + 1);
      key.erase(eq);
    }
    if (value.empty() && words >> value && value == "=") words >> value;
    if (value == "=") value.clear();
    if (words >> extra)
      return make_error(path + ":" + std::to_string(number) + ": one option and one value a line",
                        EINVAL);
    if (key == "config")
      return make_error(path + ":" + std::to_string(number) + ": a configuration file cannot "
                        "name another", EINVAL);
    args.push_back("--" + key);
    if (!value.empty()) args.push_back(value);
  }
  return args;
}

}  // namespace

Result<SvedOptions> parse_sved_options(int argc, char** argv) {
  // The configuration file's options come first: the command line's, read
  // after them, win.
  std::vector<std::string> argl;
  std::vector<std::string> given(argv + 1, argv + argc);
  for (size_t i = 0; i < given.size(); ++i) {
    if (given[i] != "--config") continue;
    if (i + 1 >= given.size()) return make_error("--config needs a file", EINVAL);
    auto from_file = read_config_file(given[i + 1]);
    if (!from_file) return from_file.error();
    argl.insert(argl.end(), from_file->begin(), from_file->end());
    given.erase(given.begin() + static_cast<long>(i), given.begin() + static_cast<long>(i) + 2);
    --i;
  }
  argl.insert(argl.end(), given.begin(), given.end());
  return parse_sved_args(argl);
}

namespace {

// Options read as text first and converted once the whole line is parsed
// (each checked as it is read, so that an error names its option).
struct Texts {
  std::string admin, nbd, iscsi, cluster, rest, io_memory, cache_size;
};

std::string check_size(const std::string& text) {
  return text == "0" || parse_size(text) ? std::string() : "needs a size such as 256M";
}

std::string check_address(const std::string& text) {
  auto a = parse_address(text);
  return a ? std::string() : a.error().message;
}

// The options, described once: the parser and --help both come from here.
void describe(CLI::App& app, SvedOptions& o, Texts& t) {
  NodeOptions& n = o.node;
  // Given twice (in the --config file and on the command line), the last wins.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--data-dir", n.data_dir, "the node's data directory (locked while it runs)")
      ->required();
  app.add_option("--admin", t.admin, "admin API address (default 127.0.0.1:10810)")
      ->check(check_address);
  app.add_option("--nbd", t.nbd, "NBD listener address (default 127.0.0.1:10809)")
      ->check(check_address);
  app.add_option("--iscsi", t.iscsi,
                 "iSCSI target address, HOST:PORT (PORT alone: 127.0.0.1; off by default; "
                 "3260 is iSCSI's port)")
      ->check(check_address);
  app.add_option("--iscsi-target", n.iscsi_target,
                 "the iSCSI target's name (default iqn.2026-12.org.sve:<configuration id>, "
                 "the same on every node of a cluster)");
  app.add_option("--cores", n.cores, "reactors, one per CPU (default 1)")
      ->check(CLI::Range(1u, 4096u));
  app.add_option("--io-memory", t.io_memory,
                 "buffer memory per core, allocated at start (default 64M, at least 64M)")
      ->check(check_size);
  app.add_option("--io-requests", n.core_io.requests, "request contexts per core (default 4096)")
      ->check(CLI::Range(1u, 9'999'999u));
  app.add_option("--cache-size", t.cache_size,
                 "the node's cache memory, shared out among the cores (default 128M; 0 turns "
                 "the cache off)")
      ->check(check_size);
  app.add_option("--max-connections", n.max_connections,
                 "host connections at once (default 1024); more are closed")
      ->check(CLI::Range(size_t{1}, size_t{9'999'999}));
  app.add_option_function<uint32_t>(
         "--handshake-timeout", [&n](uint32_t s) { n.handshake_timeout_ms = s * 1000; },
         "seconds a host may stall in its NBD handshake (not sending its next option, or not "
         "taking a reply) before it is closed (default 30)")
      ->check(CLI::Range(1, 3600));
  app.add_option_function<std::string>(
         "--tls",
         [&n](const std::string& v) {
           n.tls = v == "require" ? TlsMode::require : v == "on" ? TlsMode::on : TlsMode::off;
         },
         "NBD over TLS: off (the default), on (as the client asks) or require (plain-text "
         "clients are refused); needs --tls-psk")
      ->check(CLI::IsMember({"off", "on", "require"}));
  app.add_option("--rest", t.rest,
                 "the REST API (POST /rest/v1/<command>, beside the admin API) on HOST:PORT; "
                 "off by default")
      ->check(check_address);
  app.add_option("--admin-certificates", n.admin_certificates,
                 "TLS only on the admin API (svectl --tls-ca): a directory with server-cert.pem "
                 "and server-key.pem, and ca-cert.pem if this node adds nodes whose admin API "
                 "speaks TLS (their certificates must chain to it)");
  app.add_option("--rest-certificates", n.rest_certificates,
                 "HTTPS for the REST API: a directory with server-cert.pem and server-key.pem");
  app.add_option("--tls-psk", n.tls_psk,
                 "the pre-shared keys of NBD's TLS: IDENTITY:HEXKEY lines (psktool's format; "
                 "a host's --nbd-identity names the identity)");
  app.add_option("--tls-certificates", n.tls_certificates,
                 "X.509 for NBD's TLS: a directory with ca-cert.pem (client certificates must "
                 "chain to it), server-cert.pem, server-key.pem, optionally ca-crl.pem; a "
                 "client certificate's common name is its --nbd-identity");
  app.add_flag_callback("--no-pin", [&n] { n.pin = false; },
                        "do not pin the per-core reactor threads to CPUs");
  app.add_option("--poll-us", n.poll_us,
                 "microseconds an idle reactor keeps polling its ring (yielding the CPU "
                 "to any other thread that wants it) before it sleeps: for cores the node "
                 "has to itself, where its next completion or request seldom waits for a "
                 "wake-up (default 0: it sleeps at once)")
      ->check(CLI::Range(0u, 1'000'000u));
  app.add_option("--cluster", t.cluster,
                 "this node's cluster address: it joins a cluster (svectl cluster create on "
                 "the first node, svectl node add from a member)")
      ->check(check_address);
  app.add_option("--node-id", n.node_id,
                 "this node's number in the cluster (1 to 64; the lowest is the boss)")
      ->check(CLI::Range(1u, 64u));
  app.add_option("--quorum-device", n.quorum_device,
                 "a device or file every node shares: breaks the tie when a cluster splits "
                 "into two exact halves (a record 64 KiB in)");
  app.add_option("--heartbeat-ms", n.heartbeat_ms, "cluster heartbeat interval (default 100)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{9'999'999}));
  app.add_option("--lease-ms", n.lease_ms,
                 "how long a node serves without hearing the boss (default 3000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{9'999'999}));
  app.add_option("--log-keep", n.log_keep,
                 "committed cluster events kept in the log (default 256); a node further "
                 "behind gets a snapshot of the cluster state")
      ->check(CLI::Range(uint64_t{1}, uint64_t{9'999'999}));
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error (default info)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--init-admin", o.init_admin,
                 "a node alone: make its first administrator NAME (a securityadmin) at start "
                 "if it has none, with the password in $SVE_INIT_ADMIN_PASSWORD (in a "
                 "cluster: svectl cluster create NAME --first-user NAME)");
  app.add_flag("--demo", o.demo,
               "on an empty data dir, create two sparse file mdisks, pool0 and a 1 GiB "
               "vdisk vd0");
  app.add_option("--watchdog-ms", o.watchdog_ms,
                 "sved runs as two processes: this one (admin API, health monitoring) "
                 "restarts the I/O process when it dies or when no core heartbeat came for "
                 "this long (default 5000)")
      ->check(CLI::Range(uint64_t{100}, uint64_t{999'999'999}));
  app.add_flag("--single-process", o.single_process,
               "run the I/O process alone, unsupervised (debugging)");
  app.add_option_function<std::string>(
         "--data-channel", [&n](const std::string& v) { n.data_channel = v == "on"; },
         "the cache's copies between partner nodes, and requests forwarded to a vdisk's "
         "owner: on a data channel per core (on, the default) or through the interconnect "
         "actor (off)")
      ->check(CLI::IsMember({"on", "off"}));
  app.add_flag("--enable-chaos", n.enable_chaos,
               "let the admin API start the chaos monkey (svectl chaos): for test clusters "
               "only; refused otherwise");
  // Read in place before parsing (parse_sved_options); listed for --help.
  app.add_option("--config", "options from a file, one a line as here without the dashes "
                             "(deploy/sved.conf); options given here win over the file's");
  // Set by the configuration process on the I/O process it starts.
  app.add_flag("--io-process", o.io_process)->group("");
  app.add_option("--admin-fd", n.admin_fd)->group("")->check(CLI::Range(0, 1 << 20));
  app.add_option("--nbd-fd", n.nbd_fd)->group("")->check(CLI::Range(0, 1 << 20));
  app.add_option("--iscsi-fd", n.iscsi_fd)->group("")->check(CLI::Range(0, 1 << 20));
  app.add_option("--watchdog-fd", o.watchdog_fd)->group("")->check(CLI::Range(0, 1 << 20));
}

void name_app(CLI::App& app) {
  app.name("sved");
  app.description("sved: the SVE node daemon");
  app.set_help_flag("-h,--help", "print this help and exit");
}

}  // namespace

std::string sved_usage() {
  CLI::App app;
  name_app(app);
  SvedOptions o;
  Texts t;
  describe(app, o, t);
  return app.help();
}

Result<SvedOptions> parse_sved_args(const std::vector<std::string>& argl) {
  SvedOptions o;
  o.node.cores = 1;
  Texts t;
  CLI::App app;
  name_app(app);
  describe(app, o, t);
  std::vector<std::string> reversed(argl.rbegin(), argl.rend());  // as CLI11 reads them
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return make_error("", 0);
  } catch (const CLI::ParseError& e) {
    return make_error(e.what(), EINVAL);
  }
  // Each was checked as it was read.
  if (!t.admin.empty()) o.node.admin = parse_address(t.admin).value();
  if (!t.nbd.empty()) o.node.nbd = parse_address(t.nbd).value();
  if (!t.iscsi.empty()) o.node.iscsi = parse_address(t.iscsi).value();
  if (!o.node.iscsi_target.empty() && o.node.iscsi_target.rfind("iqn.", 0) != 0 &&
      o.node.iscsi_target.rfind("eui.", 0) != 0 && o.node.iscsi_target.rfind("naa.", 0) != 0)
    return make_error("--iscsi-target: an iSCSI name starts with iqn., eui. or naa.", EINVAL);
  if (!t.cluster.empty()) o.node.cluster = parse_address(t.cluster).value();
  if (!t.rest.empty()) o.node.rest = parse_address(t.rest).value();
  if (!o.node.rest_certificates.empty() && !o.node.rest)
    return make_error("--rest-certificates needs --rest HOST:PORT", EINVAL);
  if (!t.io_memory.empty()) o.node.core_io.buffer_bytes = parse_size(t.io_memory).value_or(0);
  if (!t.cache_size.empty())
    o.node.cache_bytes = t.cache_size == "0" ? 0 : parse_size(t.cache_size).value_or(0);
  bool credentials = !o.node.tls_psk.empty() || !o.node.tls_certificates.empty();
  if (o.node.tls != TlsMode::off && !credentials)
    return make_error("--tls " + std::string(to_string(o.node.tls)) +
                          " needs --tls-psk FILE or --tls-certificates DIR",
                      EINVAL);
  if (o.node.tls == TlsMode::off && credentials)
    return make_error("--tls-psk and --tls-certificates need --tls on or --tls require", EINVAL);
  if (o.node.cluster.has_value() != (o.node.node_id != 0))
    return make_error("--cluster and --node-id go together", EINVAL);
  if (!o.init_admin.empty() && o.node.cluster)
    return make_error("--init-admin is for a node alone; a cluster's first administrator comes "
                      "with svectl cluster create NAME --first-user NAME",
                      EINVAL);
  if (!o.init_admin.empty()) {
    const char* password = std::getenv("SVE_INIT_ADMIN_PASSWORD");
    if (!password || !*password)
      return make_error("--init-admin needs the password in $SVE_INIT_ADMIN_PASSWORD", EINVAL);
  }
  if (!o.node.quorum_device.empty() && !o.node.cluster)
    return make_error("--quorum-device needs --cluster", EINVAL);
  if (o.node.cluster && o.node.lease_ms < 4 * o.node.heartbeat_ms)
    return make_error("--lease-ms must be at least four heartbeats", EINVAL);
  return o;
}

}  // namespace sve

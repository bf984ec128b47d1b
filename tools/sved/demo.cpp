#include "tools/sved/demo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/fd.hpp"
#include "util/size.hpp"

namespace sve {
namespace {

Status run(Node& node, const nlohmann::json& request) {
  auto reply = node.admin(request);
  if (!reply.value("ok", false))
    return make_error(request.value("cmd", "") + ": " + reply.value("error", "?"), EIO);
  return ok_status();
}

Status make_sparse_file(const std::string& path, uint64_t bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return make_error(path + ": " + std::strerror(errno), errno);
  struct stat st {};
  ::fstat(fd.get(), &st);
  if (static_cast<uint64_t>(st.st_size) < bytes &&
      ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0)
    return make_error(path + ": " + std::strerror(errno), errno);
  return ok_status();
}

}  // namespace

Status ensure_demo_config(Node& node, const std::string& data_dir) {
  auto vdisks = node.admin({{"cmd", "vdisk.list"}});
  if (!vdisks["result"].empty()) return ok_status();
  auto mdisks = node.admin({{"cmd", "mdisk.list"}});
  std::vector<std::string> names = {"mdisk0", "mdisk1"};
  for (const auto& name : names) {
    bool known = false;
    for (const auto& m : mdisks["result"]) known |= m["name"] == name;
    if (known) continue;
    std::string path = data_dir + "/" + name + ".img";
    if (auto st = make_sparse_file(path, 2 * GiB); !st) return st;
    if (auto st = run(node, {{"cmd", "mdisk.add"}, {"name", name}, {"path", path}}); !st)
      return st;
  }
  auto pools = node.admin({{"cmd", "pool.list"}});
  if (pools["result"].empty()) {
    if (auto st = run(node, {{"cmd", "pool.create"}, {"name", "pool0"},
                             {"extent_size", 16 * MiB}, {"mdisks", names}});
        !st)
      return st;
  }
  return run(node, {{"cmd", "vdisk.create"}, {"name", "vd0"}, {"pool", "pool0"},
                    {"size", 1 * GiB}, {"policy", "striped"}});
}

}  // namespace sve

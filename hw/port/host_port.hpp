#pragma once
// A host-facing port: the paper's adapter queues through which hosts reach
// front-end disks. NBD over TCP is one fabric; iSCSI would be another.
#include <memory>
#include <string>

namespace sve {

struct VirtMap;
struct HostPaths;

class HostPort {
 public:
  virtual ~HostPort() = default;
  virtual std::string describe() const = 0;     // e.g. "nbd://127.0.0.1:10809"
  virtual void start() = 0;                     // begin accepting hosts
  virtual void stop() = 0;                      // drain and disconnect all hosts
  // The set of vdisks hosts may open, replaced on every configuration change.
  virtual void set_exports(std::shared_ptr<const VirtMap> map) = 0;
  // Which node's ports serve each vdisk how (model/host_paths.hpp), replaced
  // whenever ownership or the cluster view changes. A fabric that has no
  // way to tell hosts (NBD) ignores it.
  virtual void set_paths(std::shared_ptr<const HostPaths>) {}
};

}  // namespace sve

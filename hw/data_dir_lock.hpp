#pragma once
// Exclusive ownership of a data directory: two sved processes on one data
// directory would corrupt each other's configuration, so the second refuses.
#include <string>

#include "util/fd.hpp"
#include "util/result.hpp"

namespace sve {

class DataDirLock;

// Creates the data directory if need be, and locks it.
Result<DataDirLock> lock_data_dir(const std::string& data_dir);

class DataDirLock {
 public:
  static Result<DataDirLock> acquire(const std::string& data_dir);

 private:
  UniqueFd fd_;
};

}  // namespace sve

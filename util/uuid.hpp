#pragma once
#include <string>

namespace sve {
// A random RFC 4122 version-4 UUID in its text form. Labels on mdisks and the
// configuration's own identity use it.
std::string random_uuid();
}  // namespace sve

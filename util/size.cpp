#include "util/size.hpp"

#include <cctype>
#include <cstdio>

namespace sve {

std::optional<uint64_t> parse_size(std::string_view text) {
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string_view suffix = text.substr(i);
  uint64_t unit = 1;
  if (!suffix.empty()) {
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
      case 'B': unit = 1; break;
      case 'K': unit = KiB; break;
      case 'M': unit = MiB; break;
      case 'G': unit = GiB; break;
      case 'T': unit = TiB; break;
      default: return std::nullopt;
    }
    std::string_view rest = suffix.substr(1);
    bool plain_bytes = std::toupper(static_cast<unsigned char>(suffix[0])) == 'B';
    if (plain_bytes) {
      if (!rest.empty()) return std::nullopt;
    } else if (!(rest.empty() || rest == "B" || rest == "b" || rest == "iB" ||
                 rest == "ib")) {
      return std::nullopt;
    }
  }
  if (value != 0 && unit > UINT64_MAX / value) return std::nullopt;
  return value * unit;
}

std::string format_size(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char out[32];
  if (u == 0 || v == static_cast<double>(static_cast<uint64_t>(v)))
    std::snprintf(out, sizeof out, "%llu%s",
                  static_cast<unsigned long long>(v), units[u]);
  else
    std::snprintf(out, sizeof out, "%.2f%s", v, units[u]);
  return out;
}

}  // namespace sve

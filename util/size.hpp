#pragma once
// Human sizes for the admin interface: "16M", "1G", "4096". Suffixes are
// powers of 1024 (K, M, G, T, optionally followed by "iB" or "B").
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sve {

inline constexpr uint64_t KiB = 1024;
inline constexpr uint64_t MiB = 1024 * KiB;
inline constexpr uint64_t GiB = 1024 * MiB;
inline constexpr uint64_t TiB = 1024 * GiB;

std::optional<uint64_t> parse_size(std::string_view text);
std::string format_size(uint64_t bytes);

}  // namespace sve

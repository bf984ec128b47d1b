#pragma once
// Human-readable output of admin replies.
#include <string>

#include <nlohmann/json.hpp>

namespace sve {
void render_result(const std::string& command, const nlohmann::json& result);
}  // namespace sve

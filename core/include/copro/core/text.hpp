#pragma once
/// Small text helpers shared by the parsers of settings, sizes and maps.
#include <string>
#include <string_view>
#include <vector>

namespace copro::core {

/// `s` without leading and trailing white space.
std::string trimmed(std::string_view s);
/// The non-empty, trimmed items of `s` separated by `sep`.
std::vector<std::string> splitList(std::string_view s, char sep);

}  // namespace copro::core

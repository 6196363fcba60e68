#include "copro/core/text.hpp"

#include <cctype>

namespace copro::core {

std::string trimmed(std::string_view s) {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b])) != 0) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])) != 0) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> splitList(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t next = s.find(sep, pos);
    if (next == std::string_view::npos) next = s.size();
    std::string item = trimmed(s.substr(pos, next - pos));
    if (!item.empty()) out.push_back(item);
    pos = next + 1;
  }
  return out;
}

}  // namespace copro::core

/// One YAML document, strictly: no duplicate keys, no second document, bounded size.
#include "copro/topologies/detail/strict_yaml.hpp"

#include <algorithm>
#include <map>
#include <string_view>
#include <vector>

#include "copro/core/status.hpp"

namespace copro::topo::detail {

namespace {

using core::Error;
using core::ErrorCode;

std::string lineOf(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.line < 0 ? std::string("?") : std::to_string(m.line + 1);
}

/// Walks the tree with an explicit stack (no recursion), counting every node visited.
void checkTree(const YAML::Node& root, const std::string& what) {
  std::vector<YAML::Node> stack{root};
  std::int64_t visited = 0;
  while (!stack.empty()) {
    const YAML::Node n = stack.back();
    stack.pop_back();
    if (++visited > kMaxYamlNodes) {
      throw Error(ErrorCode::kParseError, what + ": more than " + std::to_string(kMaxYamlNodes) +
                                              " YAML nodes (aliases count at each use); the limit is " +
                                              std::to_string(kMaxYamlNodes));
    }
    if (n.IsSequence()) {
      for (const YAML::Node& item : n) stack.push_back(item);
    } else if (n.IsMap()) {
      std::map<std::string, YAML::Node> seen;
      for (auto it = n.begin(); it != n.end(); ++it) {
        if (it->first.IsScalar()) {
          const auto [prev, fresh] = seen.emplace(it->first.Scalar(), it->first);
          if (!fresh) {
            throw Error(ErrorCode::kParseError, what + " line " + lineOf(it->first) + ": key '" + it->first.Scalar() +
                                                    "' is given twice in one mapping (first on line " +
                                                    lineOf(prev->second) + "); keep one");
          }
        } else {
          // Readers take keys as text (yaml-cpp throws its own exception otherwise; found by fuzz_workload_yaml).
          throw Error(ErrorCode::kParseError, what + " line " + lineOf(it->first) +
                                                  ": a mapping key must be a single value, not a list or a mapping");
        }
        stack.push_back(it->second);
      }
    }
  }
}

/// The 1-based line of a second document's marker, or 0. Not YAML::LoadAll: in yaml-cpp 0.7 it loops
/// forever on some malformed inputs (found by fuzz_workload_yaml). A document marker sits at column 0
/// ("---" or "..." then a blank or the end of the line) and ends any scalar, so a text scan finds it.
int secondDocumentLine(const std::string& text) {
  bool content = false;  // a line of the first document other than blanks, comments and directives
  bool ended = false;    // after "..."
  int line = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t eol = std::min(text.find('\n', pos), text.size());
    const std::string_view l(text.data() + pos, eol - pos);
    ++line;
    const auto marker = [&](std::string_view m) {
      return l.substr(0, 3) == m && (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
    };
    const std::size_t first = l.find_first_not_of(" \t\r");
    const bool blank = first == std::string_view::npos || l[first] == '#';
    if (marker("---")) {
      if (content || ended) return line;
      content = l.find_first_not_of(" \t\r", 3) != std::string_view::npos && l[l.find_first_not_of(" \t\r", 3)] != '#';
    } else if (marker("...")) {
      ended = true;
    } else if (!blank && !(l.substr(0, 1) == "%" && !content)) {
      if (ended) return line;
      content = true;
    }
    pos = eol + 1;
  }
  return 0;
}

}  // namespace

YAML::Node loadStrictYaml(const std::string& text, const std::string& what) {
  if (const int line = secondDocumentLine(text); line > 0) {
    throw Error(ErrorCode::kParseError, what + " line " + std::to_string(line) +
                                            ": a second YAML document ('---'); a file holds one document, remove "
                                            "the second");
  }
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kParseError, what + " line " + std::to_string(e.mark.line + 1) + " column " +
                                            std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  checkTree(doc, what);
  return doc;
}

}  // namespace copro::topo::detail

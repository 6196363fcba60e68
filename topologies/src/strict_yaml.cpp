/// One YAML document, strictly: no duplicate keys, no second document, bounded size.
#include "copro/topologies/detail/strict_yaml.hpp"

#include <map>
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
          stack.push_back(it->first);
        }
        stack.push_back(it->second);
      }
    }
  }
}

}  // namespace

YAML::Node loadStrictYaml(const std::string& text, const std::string& what) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kParseError, what + " line " + std::to_string(e.mark.line + 1) + " column " +
                                            std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  if (docs.size() > 1) {
    throw Error(ErrorCode::kParseError, what + " line " + lineOf(docs[1]) + ": a second YAML document ('---'); " +
                                            "a file holds one document, remove the second");
  }
  if (docs.empty()) return YAML::Node();
  checkTree(docs[0], what);
  return docs[0];
}

}  // namespace copro::topo::detail

#pragma once
/// Internal to copro's YAML readers (topology and workload files), which link yaml-cpp themselves: one
/// document parsed strictly. yaml-cpp keeps the last of duplicate keys and ignores a second document;
/// both hide a mistake, so both are errors here.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>

namespace copro::topo::detail {

/// Nodes one YAML document may expand to, aliases counted at each use (a "billion laughs" file is an
/// error, not a billion-step walk).
inline constexpr std::int64_t kMaxYamlNodes = std::int64_t{1} << 20;

/// Parses `text` as exactly one YAML document. Throws core::Error(kParseError) starting with `what`
/// ("topology 'x.yaml'") for a syntax error (with line and column), nesting deeper than yaml-cpp allows, a
/// second document, a key given twice in one mapping (naming both lines), or more than kMaxYamlNodes nodes.
/// An empty text is a null node.
YAML::Node loadStrictYaml(const std::string& text, const std::string& what);

}  // namespace copro::topo::detail

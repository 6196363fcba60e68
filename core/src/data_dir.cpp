/// The run-time data folder (data_dir.hpp): COPRO_DATA_DIR, else share/copro beside the executable's or the
/// library's prefix, found through /proc/self/exe and dladdr.
#include "copro/core/data_dir.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"

namespace copro::core {
namespace {

namespace fs = std::filesystem;

/// <dir>/../share/copro and, for multiarch library folders (lib/x86_64-linux-gnu), <dir>/../../share/copro.
void addPrefixesOf(const fs::path& binary, std::vector<std::string>& out) {
  if (binary.empty()) return;
  const fs::path dir = binary.parent_path();
  for (const fs::path& prefix : {dir.parent_path(), dir.parent_path().parent_path()}) {
    if (prefix.empty()) continue;
    const std::string candidate = (prefix / "share" / "copro").lexically_normal().string();
    bool seen = false;
    for (const auto& c : out) seen = seen || c == candidate;
    if (!seen) out.push_back(candidate);
  }
}

fs::path executablePath() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : p;
}

/// COPRO_DATA_DIR, read through Config's table (no Config is at hand where the data folder is looked up).
std::string dataDirFromEnvironment() {
  Config env;
  env.readEnvironment({"COPRO_DATA_DIR"});
  return env.dataDir;
}

bool isDirectory(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

}  // namespace

std::string coproBinaryPath() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&coproBinaryPath), &info) == 0 || info.dli_fname == nullptr) return {};
  std::error_code ec;
  const fs::path p = fs::canonical(info.dli_fname, ec);
  return ec ? std::string() : p.string();
}

std::vector<std::string> dataDirectoryCandidates() {
  std::vector<std::string> out;
  if (const std::string env = dataDirFromEnvironment(); !env.empty()) out.push_back(env);
  addPrefixesOf(executablePath(), out);
  addPrefixesOf(fs::path(coproBinaryPath()), out);
#ifdef COPRO_INSTALL_DATA_DIR
  // Last: the configured install location (CMAKE_INSTALL_PREFIX), for programs linked statically elsewhere.
  out.emplace_back(COPRO_INSTALL_DATA_DIR);
#endif
  return out;
}

std::string findDataDirectory() {
  for (const auto& c : dataDirectoryCandidates()) {
    if (isDirectory(c)) return c;
  }
  return {};
}

std::string dataDirectory() {
  if (const std::string env = dataDirFromEnvironment(); !env.empty() && !isDirectory(env)) {
    throw Error(ErrorCode::kInvalidArgument, "COPRO_DATA_DIR='" + env +
                                                 "' is not a folder; point it at copro's share/copro (the folder "
                                                 "holding topologies/ and workloads/) or unset it");
  }
  std::string found = findDataDirectory();
  if (!found.empty()) return found;
  std::string tried;
  for (const auto& c : dataDirectoryCandidates()) tried += (tried.empty() ? "" : ", ") + c;
  throw Error(ErrorCode::kUnsupported,
              "copro's data folder (share/copro, with the bundled topologies and "
              "workloads) was not found; tried " +
                  (tried.empty() ? std::string("nothing") : tried) +
                  "; install copro (cmake --install) or set COPRO_DATA_DIR");
}

std::string dataPath(std::string_view sub) {
  return (fs::path(dataDirectory()) / sub).string();
}

}  // namespace copro::core

// libFuzzer target: Chakra execution traces (sim/src/chakra_trace.cpp) and the workload scheduler behind
// them. The input is 1 to 3 rank files: byte 0 picks the count, then each file but the last is a 2-byte
// little-endian length and its bytes, the last file the rest. Any input either loads and schedules or
// throws core::Error.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/chakra_trace.hpp"
#include "copro/sim/workload.hpp"

namespace {

/// Writes the rank files of `data` under `prefix`; returns how many.
int writeRanks(const std::uint8_t* data, std::size_t size, const std::string& prefix) {
  if (size == 0) return 0;
  const int ranks = 1 + data[0] % 3;
  std::size_t at = 1;
  for (int r = 0; r < ranks; ++r) {
    std::size_t len = size - std::min(at, size);
    if (r + 1 < ranks) {
      len = at + 2 <= size ? static_cast<std::size_t>(data[at]) | (static_cast<std::size_t>(data[at + 1]) << 8) : 0;
      at = std::min(at + 2, size);
      len = std::min(len, size - at);
    }
    std::ofstream out(copro::sim::chakraTraceFile(prefix, r), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data + at), static_cast<std::streamsize>(len));
    at += len;
  }
  return ranks;
}

/// This process's folder of rank files, made once (in /dev/shm, a tmpfs, where there is one) and removed at
/// exit. The files are rewritten in place for each input: removing and recreating the folder per input
/// made the kernel's inode allocation on /tmp (ext4) two thirds of the target's time (docs/fuzzing.md).
const std::string& traceDir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    const fs::path d = base / ("copro_fuzz_chakra_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d.string();
  }();
  static const int cleanup = std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(traceDir(), ec);
  });
  (void)cleanup;
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string prefix = traceDir() + "/t";
  const int ranks = writeRanks(data, size, prefix);
  if (ranks == 0) return 0;
  try {
    copro::sim::ChakraOptions options;
    options.ranks = ranks;
    options.groups["g"] = {0, ranks - 1};
    const copro::sim::Workload wl = copro::sim::loadChakraTrace(prefix, options);
    copro::sim::WorkloadOptions run;
    run.ranks = ranks;
    run.commTime = [](const copro::sim::CommTask& t) {
      return copro::core::Time::ns(static_cast<double>(t.bytes % 1000) + 1.0);
    };
    (void)copro::sim::runWorkload(wl, run);
  } catch (const copro::core::Error&) {
  }
  return 0;
}

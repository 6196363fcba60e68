#pragma once
/// Reading an input file whole, bounded: every file reader of copro (topologies, workloads, Program JSON,
/// routing files) goes through readBoundedFile, so `/dev/zero`, a pipe or a multi-gigabyte file is an
/// error before anything is read (docs/config.md, "Limits").
#include <cstdint>
#include <string>

namespace copro::core {

/// The largest text input file copro reads (topology, workload, Program JSON): 64 MiB.
inline constexpr std::uint64_t kMaxInputFileBytes = std::uint64_t{64} << 20;

/// Checks that `path` names a regular file of at most `maxBytes` bytes, then returns its contents. `what`
/// names the file in errors ("topology 'x.yaml'"). Throws Error: kInvalidArgument for a missing file, a
/// directory, a device or pipe, or one over the limit (naming its size and the limit); kSystemError when
/// it cannot be read. The read itself stops at `maxBytes` + 1 bytes, so a file that grows meanwhile
/// cannot make it read more.
std::string readBoundedFile(const std::string& path, const std::string& what,
                            std::uint64_t maxBytes = kMaxInputFileBytes);

/// The same checks without reading (for readers that stream the file); throws as readBoundedFile.
void checkBoundedFile(const std::string& path, const std::string& what, std::uint64_t maxBytes = kMaxInputFileBytes);

}  // namespace copro::core

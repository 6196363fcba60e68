#pragma once
/// Where copro's bundled data (the topology and workload files) lives at run time. Nothing from the source
/// tree is compiled in: the folder is COPRO_DATA_DIR when set, else `share/copro` beside the prefix of the
/// running executable (`<prefix>/bin/../share/copro`) or of the copro library itself
/// (`<prefix>/lib[/<arch>]/../share/copro`), so an installed, moved or relocated copy finds its own data;
/// last, the configured install location (`CMAKE_INSTALL_PREFIX/share/copro`), for a program linked with the
/// static archives somewhere else. A build tree mirrors the installed layout (`build/share/copro`, next to
/// `build/tools`, `build/bench`).
#include <string>
#include <string_view>
#include <vector>

namespace copro::core {

/// The file copro's code was loaded from: libcopro.so, or the executable when linked statically (empty when
/// the loader cannot say). Data folders and plugins (the CUDA plugin) are looked for relative to it.
std::string coproBinaryPath();

/// The folders dataDirectory() tries, in order (existing or not).
std::vector<std::string> dataDirectoryCandidates();

/// The first candidate that exists; empty when none does.
std::string findDataDirectory();

/// The data folder; throws Error(kInvalidArgument) when COPRO_DATA_DIR names a folder that does not exist,
/// and Error(kUnsupported) listing the folders tried when none exists.
std::string dataDirectory();

/// dataDirectory() + "/" + sub ("topologies", "workloads").
std::string dataPath(std::string_view sub);

}  // namespace copro::core

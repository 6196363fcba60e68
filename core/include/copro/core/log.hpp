#pragma once
/// Logging: `COPRO_LOG(Info, Coll, "ring step " << i)` (level and subsystem name the enumerators).
///
/// The level comes from COPRO_DEBUG (NONE, WARN, INFO, TRACE; default WARN) and the subsystems from
/// COPRO_DEBUG_SUBSYS (comma-separated, ALL by default; a leading '^' excludes, as in NCCL).
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

namespace copro::core {

enum class LogLevel : std::uint8_t { kNone = 0, kWarn = 1, kInfo = 2, kTrace = 3 };

/// Subsystems as bits, so a mask can select several.
enum class LogSubsys : std::uint32_t {
  kInit = 1U << 0,
  kColl = 1U << 1,
  kP2p = 1U << 2,
  kPlan = 1U << 3,
  kProgram = 1U << 4,
  kTransport = 1U << 5,
  kAlloc = 1U << 6,
  kSim = 1U << 7,
  kTopo = 1U << 8,
  kEnv = 1U << 9,
  kAll = 0xffffffffU,
};

/// Parses a COPRO_DEBUG value; throws Error on an unknown level.
LogLevel parseLogLevel(std::string_view text);
/// Parses a COPRO_DEBUG_SUBSYS value into a mask; throws Error on an unknown subsystem.
std::uint32_t parseLogSubsysMask(std::string_view text);
std::string_view logLevelName(LogLevel level);
std::string_view logSubsysName(LogSubsys subsys);

/// Sets the active level and mask (done from Config at first use; tests may override).
void setLogFilter(LogLevel level, std::uint32_t subsysMask);
/// True when a message of this level and subsystem would be printed.
bool logEnabled(LogLevel level, LogSubsys subsys) noexcept;
/// Writes one line to stderr: "copro <pid> <LEVEL> <SUBSYS> <file>:<line> message".
void logWrite(LogLevel level, LogSubsys subsys, const char* file, int line, const std::string& message);

}  // namespace copro::core

#define COPRO_LOG(level, subsys, stream_expr)                                                                   \
  do {                                                                                                          \
    if (::copro::core::logEnabled(::copro::core::LogLevel::k##level, ::copro::core::LogSubsys::k##subsys)) {    \
      std::ostringstream copro_log_os_;                                                                         \
      copro_log_os_ << stream_expr; /* NOLINT(bugprone-macro-parentheses) */                                    \
      ::copro::core::logWrite(::copro::core::LogLevel::k##level, ::copro::core::LogSubsys::k##subsys, __FILE__, \
                              __LINE__, copro_log_os_.str());                                                   \
    }                                                                                                           \
  } while (0)

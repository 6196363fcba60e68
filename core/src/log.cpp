#include "copro/core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"
#include "copro/core/text.hpp"

namespace copro::core {

namespace {

struct SubsysName {
  LogSubsys subsys;
  std::string_view name;
};
constexpr SubsysName kSubsysNames[] = {
    {LogSubsys::kInit, "INIT"},   {LogSubsys::kColl, "COLL"},       {LogSubsys::kP2p, "P2P"},
    {LogSubsys::kPlan, "PLAN"},   {LogSubsys::kProgram, "PROGRAM"}, {LogSubsys::kTransport, "TRANSPORT"},
    {LogSubsys::kAlloc, "ALLOC"}, {LogSubsys::kSim, "SIM"},         {LogSubsys::kTopo, "TOPO"},
    {LogSubsys::kEnv, "ENV"},     {LogSubsys::kAll, "ALL"},
};

std::string upper(std::string_view s) {
  std::string out;
  for (char c : s) out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return out;
}

// Filter state: initialised lazily from the environment so logging works before any Config exists.
std::atomic<int> gLevel{-1};
std::atomic<std::uint32_t> gMask{static_cast<std::uint32_t>(LogSubsys::kAll)};
std::once_flag gInitOnce;

void initFromEnvironment() {
  std::call_once(gInitOnce, [] {
    if (gLevel.load() >= 0) return;  // set explicitly before first use
    LogLevel level = LogLevel::kWarn;
    std::uint32_t mask = static_cast<std::uint32_t>(LogSubsys::kAll);
    try {
      // No Config exists yet: read the two variables through Config's table and parsers.
      Config env;
      env.readEnvironment({"COPRO_DEBUG", "COPRO_DEBUG_SUBSYS"});
      level = parseLogLevel(env.debug);
      mask = parseLogSubsysMask(env.debugSubsys);
    } catch (const Error& e) {
      std::fprintf(stderr, "copro WARN ENV %s (using COPRO_DEBUG=WARN)\n", e.what());
    }
    int expected = -1;
    gLevel.compare_exchange_strong(expected, static_cast<int>(level));
    gMask.store(mask);
  });
}

}  // namespace

LogLevel parseLogLevel(std::string_view text) {
  std::string t = upper(trimmed(text));
  if (t.empty() || t == "WARN" || t == "WARNING") return LogLevel::kWarn;
  if (t == "NONE" || t == "OFF") return LogLevel::kNone;
  if (t == "INFO") return LogLevel::kInfo;
  if (t == "TRACE" || t == "DEBUG") return LogLevel::kTrace;
  throw Error(ErrorCode::kInvalidArgument,
              "COPRO_DEBUG='" + std::string(text) + "' is not a log level; use NONE, WARN, INFO or TRACE");
}

std::uint32_t parseLogSubsysMask(std::string_view text) {
  std::string t = upper(trimmed(text));
  if (t.empty()) return static_cast<std::uint32_t>(LogSubsys::kAll);
  bool exclude = false;
  if (t[0] == '^') {
    exclude = true;
    t.erase(0, 1);
  }
  std::uint32_t mask = 0;
  std::size_t pos = 0;
  while (pos <= t.size()) {
    std::size_t comma = t.find(',', pos);
    if (comma == std::string::npos) comma = t.size();
    std::string item = trimmed(std::string_view(t).substr(pos, comma - pos));
    if (!item.empty()) {
      bool found = false;
      for (const auto& s : kSubsysNames) {
        if (s.name == item) {
          mask |= static_cast<std::uint32_t>(s.subsys);
          found = true;
        }
      }
      if (!found) {
        std::string known;
        for (const auto& s : kSubsysNames) {
          if (!known.empty()) known += ", ";
          known += s.name;
        }
        std::string msg = "COPRO_DEBUG_SUBSYS: unknown subsystem '";
        msg.append(item).append("'; known: ").append(known);
        throw Error(ErrorCode::kInvalidArgument, msg);
      }
    }
    pos = comma + 1;
  }
  return exclude ? ~mask : mask;
}

std::string_view logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kNone:
      return "NONE";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kTrace:
      return "TRACE";
  }
  return "?";
}

std::string_view logSubsysName(LogSubsys subsys) {
  for (const auto& s : kSubsysNames) {
    if (s.subsys == subsys) return s.name;
  }
  return "?";
}

void setLogFilter(LogLevel level, std::uint32_t subsysMask) {
  initFromEnvironment();
  gLevel.store(static_cast<int>(level));
  gMask.store(subsysMask);
}

bool logEnabled(LogLevel level, LogSubsys subsys) noexcept {
  int current = gLevel.load(std::memory_order_relaxed);
  if (current < 0) {
    initFromEnvironment();
    current = gLevel.load();
  }
  return static_cast<int>(level) <= current && level != LogLevel::kNone &&
         (gMask.load(std::memory_order_relaxed) & static_cast<std::uint32_t>(subsys)) != 0;
}

void logWrite(LogLevel level, LogSubsys subsys, const char* file, int line, const std::string& message) {
  static std::mutex mutex;
  std::string_view f(file);
  if (auto slash = f.rfind('/'); slash != std::string_view::npos) f.remove_prefix(slash + 1);
  std::lock_guard<std::mutex> lock(mutex);
  std::fprintf(stderr, "copro %d %s %s %.*s:%d %s\n", static_cast<int>(getpid()), logLevelName(level).data(),
               logSubsysName(subsys).data(), static_cast<int>(f.size()), f.data(), line, message.c_str());
}

}  // namespace copro::core

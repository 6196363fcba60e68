#pragma once
/// A streaming writer of Chrome trace / Perfetto JSON (the "Trace Event Format": `{"traceEvents":[...]}`),
/// shared by the simulator's tools and the real executors so a prediction and a measurement of the same
/// Program can be opened side by side (chrome://tracing, https://ui.perfetto.dev).
///
/// Conventions (docs/copro-sim.md, "Trace format"): pid = rank (one process per rank; link counters go to
/// a separate process the caller names, e.g. "links"), tid = lane. Timestamps are microseconds written as
/// exact decimals of integer picoseconds ("12.345678"), so no precision is lost and the same events give
/// byte-identical files. Events are written in call order, as they come; nothing is buffered beyond the
/// stream's own buffer.
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "copro/core/units.hpp"

namespace copro::core {

/// One entry of an event's "args" object: an integer, a floating-point number or a string.
struct TraceArg {
  std::string key;
  std::variant<std::int64_t, double, std::string> value;

  template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  TraceArg(std::string k, T v) : key(std::move(k)), value(static_cast<std::int64_t>(v)) {}
  TraceArg(std::string k, double v) : key(std::move(k)), value(v) {}
  TraceArg(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  TraceArg(std::string k, const char* v) : key(std::move(k)), value(std::string(v)) {}
};
using TraceArgs = std::vector<TraceArg>;

/// Writes trace events to a stream or a file. Call finish() (or let the destructor do it) to close the
/// JSON; a writer that is not finished leaves a file Perfetto still opens but strict JSON parsers reject.
class TraceWriter {
 public:
  /// Writes to `out`, which must outlive the writer.
  explicit TraceWriter(std::ostream& out);
  /// Creates (truncates) `path`; throws Error(kSystemError) naming the file when it cannot be opened.
  explicit TraceWriter(const std::string& path);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  /// "M" metadata: the name shown for process `pid` (e.g. "rank 3 (n0.gpu3)").
  void processName(std::int64_t pid, std::string_view name);
  /// "M" metadata: where process `pid` is sorted among processes (viewers sort by this, then by pid).
  void processSortIndex(std::int64_t pid, std::int64_t index);
  /// "M" metadata: the name shown for thread `tid` of process `pid` (e.g. "lane 0 (device)").
  void threadName(std::int64_t pid, std::int64_t tid, std::string_view name);
  /// "M" metadata: sort position of a thread inside its process.
  void threadSortIndex(std::int64_t pid, std::int64_t tid, std::int64_t index);

  /// "X" complete event: a slice [begin, begin + duration) on thread (pid, tid). Slices of one thread
  /// must nest or follow each other; overlapping ones are drawn wrongly by the viewers.
  void complete(std::int64_t pid, std::int64_t tid, std::string_view name, std::string_view category, Time begin,
                Time duration, const TraceArgs& args = {});
  /// "b"/"e" nestable async events: a slice that may overlap others of the same process (the viewers pack
  /// overlapping slices of one name into rows). `id` must be unique among the process's open slices.
  void asyncSlice(std::int64_t pid, std::int64_t tid, std::uint64_t id, std::string_view name,
                  std::string_view category, Time begin, Time end, const TraceArgs& args = {});
  /// "C" counter: the counter track `name` of process `pid` takes value `value` from `at` on (one series
  /// named `series`). Non-finite values are written as 0 (JSON has no NaN).
  void counter(std::int64_t pid, std::string_view name, Time at, std::string_view series, double value);
  /// "i" instant event on a thread.
  void instant(std::int64_t pid, std::int64_t tid, std::string_view name, std::string_view category, Time at,
               const TraceArgs& args = {});

  /// Closes the JSON (`]}`) and flushes; later calls do nothing. Throws Error(kSystemError) when writing
  /// failed (disk full).
  void finish();
  /// Events written so far (metadata included).
  [[nodiscard]] std::uint64_t eventCount() const { return events_; }

 private:
  void startEvent(char phase);
  void writeArgs(const TraceArgs& args);

  std::unique_ptr<std::ostream> owned_;
  std::ostream* out_ = nullptr;
  std::string path_;
  std::uint64_t events_ = 0;
  bool finished_ = false;
};

/// Microseconds of `t` as an exact decimal with up to 6 fractional digits (ps precision), trailing zeros
/// dropped: Time::ps(1234567) -> "1.234567", Time::us(2) -> "2".
std::string formatTraceMicros(Time t);
/// `s` as a JSON string literal, quotes included.
std::string jsonQuoted(std::string_view s);

}  // namespace copro::core

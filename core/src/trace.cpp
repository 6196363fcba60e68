#include "copro/core/trace.hpp"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <ostream>

#include "copro/core/status.hpp"

namespace copro::core {

namespace {

/// Shortest round-trippable-enough text of a double; JSON has no NaN/Infinity, so those become 0.
std::string formatNumber(double v) {
  if (!std::isfinite(v)) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

std::string formatTraceMicros(Time t) {
  std::int64_t ps = t.picoseconds();
  std::string out;
  // Negative times do not come from a simulation, but a clock skew in a measurement may produce them.
  std::uint64_t mag = ps < 0 ? static_cast<std::uint64_t>(-(ps + 1)) + 1 : static_cast<std::uint64_t>(ps);
  if (ps < 0) out.push_back('-');
  out += std::to_string(mag / 1000000U);
  std::uint64_t frac = mag % 1000000U;
  if (frac != 0) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%06" PRIu64, frac);
    std::string digits(buf);
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    out.push_back('.');
    out += digits;
  }
  return out;
}

std::string jsonQuoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

TraceWriter::TraceWriter(std::ostream& out) : out_(&out) {
  *out_ << "{\"traceEvents\":[";
}

TraceWriter::TraceWriter(const std::string& path) : path_(path) {
  auto f = std::make_unique<std::ofstream>(path, std::ios::binary | std::ios::trunc);
  if (!*f) throw Error(ErrorCode::kSystemError, "cannot write trace file '" + path + "'");
  owned_ = std::move(f);
  out_ = owned_.get();
  *out_ << "{\"traceEvents\":[";
}

TraceWriter::~TraceWriter() {
  try {
    finish();
  } catch (const Error&) {
    // A destructor must not throw; callers that care call finish() themselves.
  }
}

void TraceWriter::startEvent(char phase) {
  // One event per line keeps the files diffable and greppable.
  *out_ << (events_ == 0 ? "\n" : ",\n") << "{\"ph\":\"" << phase << '"';
  ++events_;
}

void TraceWriter::writeArgs(const TraceArgs& args) {
  if (args.empty()) return;
  *out_ << ",\"args\":{";
  bool first = true;
  for (const auto& a : args) {
    if (!first) *out_ << ',';
    first = false;
    *out_ << jsonQuoted(a.key) << ':';
    if (const auto* i = std::get_if<std::int64_t>(&a.value)) {
      *out_ << *i;
    } else if (const auto* d = std::get_if<double>(&a.value)) {
      *out_ << formatNumber(*d);
    } else {
      *out_ << jsonQuoted(std::get<std::string>(a.value));
    }
  }
  *out_ << '}';
}

void TraceWriter::processName(std::int64_t pid, std::string_view name) {
  startEvent('M');
  *out_ << ",\"name\":\"process_name\",\"pid\":" << pid << ",\"tid\":0,\"args\":{\"name\":" << jsonQuoted(name) << "}}";
}

void TraceWriter::processSortIndex(std::int64_t pid, std::int64_t index) {
  startEvent('M');
  *out_ << ",\"name\":\"process_sort_index\",\"pid\":" << pid << ",\"tid\":0,\"args\":{\"sort_index\":" << index
        << "}}";
}

void TraceWriter::threadName(std::int64_t pid, std::int64_t tid, std::string_view name) {
  startEvent('M');
  *out_ << ",\"name\":\"thread_name\",\"pid\":" << pid << ",\"tid\":" << tid
        << ",\"args\":{\"name\":" << jsonQuoted(name) << "}}";
}

void TraceWriter::threadSortIndex(std::int64_t pid, std::int64_t tid, std::int64_t index) {
  startEvent('M');
  *out_ << ",\"name\":\"thread_sort_index\",\"pid\":" << pid << ",\"tid\":" << tid
        << ",\"args\":{\"sort_index\":" << index << "}}";
}

void TraceWriter::complete(std::int64_t pid, std::int64_t tid, std::string_view name, std::string_view category,
                           Time start, Time duration, const TraceArgs& args) {
  startEvent('X');
  *out_ << ",\"name\":" << jsonQuoted(name) << ",\"cat\":" << jsonQuoted(category) << ",\"pid\":" << pid
        << ",\"tid\":" << tid << ",\"ts\":" << formatTraceMicros(start) << ",\"dur\":" << formatTraceMicros(duration);
  writeArgs(args);
  *out_ << '}';
}

void TraceWriter::asyncSlice(std::int64_t pid, std::int64_t tid, std::uint64_t id, std::string_view name,
                             std::string_view category, Time start, Time end, const TraceArgs& args) {
  startEvent('b');
  *out_ << ",\"name\":" << jsonQuoted(name) << ",\"cat\":" << jsonQuoted(category) << ",\"id\":" << id
        << ",\"pid\":" << pid << ",\"tid\":" << tid << ",\"ts\":" << formatTraceMicros(start);
  writeArgs(args);
  *out_ << '}';
  startEvent('e');
  *out_ << ",\"name\":" << jsonQuoted(name) << ",\"cat\":" << jsonQuoted(category) << ",\"id\":" << id
        << ",\"pid\":" << pid << ",\"tid\":" << tid << ",\"ts\":" << formatTraceMicros(end) << '}';
}

void TraceWriter::counter(std::int64_t pid, std::string_view name, Time at, std::string_view series, double value) {
  startEvent('C');
  *out_ << ",\"name\":" << jsonQuoted(name) << ",\"pid\":" << pid << ",\"tid\":0,\"ts\":" << formatTraceMicros(at)
        << ",\"args\":{" << jsonQuoted(series) << ':' << formatNumber(value) << "}}";
}

void TraceWriter::instant(std::int64_t pid, std::int64_t tid, std::string_view name, std::string_view category, Time at,
                          const TraceArgs& args) {
  startEvent('i');
  *out_ << ",\"name\":" << jsonQuoted(name) << ",\"cat\":" << jsonQuoted(category) << ",\"s\":\"t\",\"pid\":" << pid
        << ",\"tid\":" << tid << ",\"ts\":" << formatTraceMicros(at);
  writeArgs(args);
  *out_ << '}';
}

void TraceWriter::finish() {
  if (finished_) return;
  finished_ = true;
  // displayTimeUnit makes chrome://tracing show ns, the natural unit of a fabric's latencies.
  *out_ << "\n],\"displayTimeUnit\":\"ns\"}\n";
  out_->flush();
  if (!*out_) {
    throw Error(ErrorCode::kSystemError,
                "writing the trace" + (path_.empty() ? std::string() : " '" + path_ + "'") + " failed");
  }
}

}  // namespace copro::core

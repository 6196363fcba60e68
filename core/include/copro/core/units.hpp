#pragma once
/// Units: byte counts, time in integer picoseconds, bandwidth in bytes per second.
#include <cstdint>
#include <string>
#include <string_view>

namespace copro::core {

/// Simulated and measured time, integer picoseconds (2^63 ps is about 106 days).
class Time {
 public:
  constexpr Time() = default;
  static constexpr Time ps(std::int64_t v) { return Time(v); }
  static constexpr Time ns(double v) { return Time(static_cast<std::int64_t>(v * 1e3 + (v >= 0 ? 0.5 : -0.5))); }
  static constexpr Time us(double v) { return Time(static_cast<std::int64_t>(v * 1e6 + (v >= 0 ? 0.5 : -0.5))); }
  static constexpr Time ms(double v) { return Time(static_cast<std::int64_t>(v * 1e9 + (v >= 0 ? 0.5 : -0.5))); }
  static constexpr Time sec(double v) { return Time(static_cast<std::int64_t>(v * 1e12 + (v >= 0 ? 0.5 : -0.5))); }

  [[nodiscard]] constexpr std::int64_t picoseconds() const { return ps_; }
  [[nodiscard]] constexpr double nanoseconds() const { return static_cast<double>(ps_) * 1e-3; }
  [[nodiscard]] constexpr double microseconds() const { return static_cast<double>(ps_) * 1e-6; }
  [[nodiscard]] constexpr double seconds() const { return static_cast<double>(ps_) * 1e-12; }

  constexpr Time operator+(Time o) const { return Time(ps_ + o.ps_); }
  constexpr Time operator-(Time o) const { return Time(ps_ - o.ps_); }
  constexpr Time& operator+=(Time o) {
    ps_ += o.ps_;
    return *this;
  }
  constexpr auto operator<=>(const Time&) const = default;

 private:
  constexpr explicit Time(std::int64_t v) : ps_(v) {}
  std::int64_t ps_ = 0;
};

/// Bandwidth in bytes per second (GB/s means 1e9 B/s, as nccl-tests counts).
class Bandwidth {
 public:
  constexpr Bandwidth() = default;
  static constexpr Bandwidth bytesPerSec(double v) { return Bandwidth(v); }
  static constexpr Bandwidth gbps(double gigabytesPerSec) { return Bandwidth(gigabytesPerSec * 1e9); }
  /// Gigabits per second (link rates: 400 Gb/s = 50 GB/s).
  static constexpr Bandwidth gbitps(double gigabitsPerSec) { return Bandwidth(gigabitsPerSec * 1e9 / 8.0); }

  [[nodiscard]] constexpr double bytesPerSecond() const { return bps_; }
  [[nodiscard]] constexpr double gigabytesPerSecond() const { return bps_ * 1e-9; }
  /// Time to move `bytes` at this rate, rounded to the nearest picosecond.
  [[nodiscard]] Time transferTime(std::uint64_t bytes) const;

 private:
  constexpr explicit Bandwidth(double v) : bps_(v) {}
  double bps_ = 0.0;
};

/// Parses "64M", "1K", "4097", "2G", "1.5M" (K/M/G/T are powers of 1024, as in nccl-tests; an optional
/// trailing "B" or "iB" is accepted). Throws Error(kParseError) naming the text on failure.
std::uint64_t parseBytes(std::string_view text);
/// Formats a byte count the way parseBytes reads it back when exact ("64M", "4097").
std::string formatBytes(std::uint64_t bytes);
/// Parses a duration: "5s", "200ms", "10us", "3ns", "7ps"; a bare number is seconds.
Time parseTime(std::string_view text);

}  // namespace copro::core

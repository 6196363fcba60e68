#pragma once
/// Errors and status values shared by every copro module.
///
/// Setup paths throw `copro::Error` with a message a user can act on; hot paths return `Status`.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace copro::core {

/// What went wrong, coarsely; the message says the rest.
enum class ErrorCode : std::uint8_t {
  kOk = 0,
  kInvalidArgument,  ///< a bad value passed by the caller (null buffer, count overflow, ...)
  kInvalidUsage,     ///< a call made in the wrong state or order (mismatched collective calls, ...)
  kUnsupported,      ///< a valid request this build or backend cannot do (dtype/op pair, missing backend)
  kOutOfMemory,
  kTimeout,         ///< a peer did not arrive or progress within COPRO_TIMEOUT
  kRemoteError,     ///< a peer failed or disappeared
  kAborted,         ///< Communicator::abort() released the call
  kInvalidProgram,  ///< the Program validator rejected a Program
  kParseError,      ///< malformed input file (JSON, YAML, size string)
  kSystemError,     ///< an OS call failed
  kInternal,        ///< a bug in copro
};

/// Stable lower-case name of an error code ("invalid-argument", ...).
std::string_view errorCodeName(ErrorCode code);

/// The exception thrown by setup paths. `what()` is "<code>: <message>".
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  /// The message without the code prefix.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

/// Result of a hot-path call: either ok or an error code with a message.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status okStatus() { return {}; }

  [[nodiscard]] bool ok() const noexcept { return code_ == ErrorCode::kOk; }
  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  /// "ok" or "<code>: <message>".
  [[nodiscard]] std::string toString() const;
  /// Throws `Error` unless ok.
  void throwIfError() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

}  // namespace copro::core

namespace copro {
using core::Error;
using core::ErrorCode;
using core::Status;
}  // namespace copro

/// Returns early from a Status-returning function when `expr` fails.
#define COPRO_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::copro::core::Status copro_status_ = (expr);  \
    if (!copro_status_.ok()) return copro_status_; \
  } while (0)

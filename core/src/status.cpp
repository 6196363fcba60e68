#include "copro/core/status.hpp"

namespace copro::core {

std::string_view errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalidArgument:
      return "invalid-argument";
    case ErrorCode::kInvalidUsage:
      return "invalid-usage";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kOutOfMemory:
      return "out-of-memory";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kRemoteError:
      return "remote-error";
    case ErrorCode::kAborted:
      return "aborted";
    case ErrorCode::kInvalidProgram:
      return "invalid-program";
    case ErrorCode::kParseError:
      return "parse-error";
    case ErrorCode::kSystemError:
      return "system-error";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(std::string(errorCodeName(code)) + ": " + message), code_(code), message_(message) {}

std::string Status::toString() const {
  if (ok()) return "ok";
  return std::string(errorCodeName(code_)) + ": " + message_;
}

void Status::throwIfError() const {
  if (!ok()) throw Error(code_, message_);
}

}  // namespace copro::core

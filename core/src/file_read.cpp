/// Bounded reads of input files: regular files only, size checked before reading.
#include "copro/core/file_read.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "copro/core/status.hpp"

namespace copro::core {

namespace {

std::string mib(std::uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

}  // namespace

void checkBoundedFile(const std::string& path, const std::string& what, std::uint64_t maxBytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    if (!fs::exists(st)) throw Error(ErrorCode::kInvalidArgument, what + " cannot be opened (no such file)");
    throw Error(ErrorCode::kInvalidArgument, what + " cannot be opened (" + ec.message() + ")");
  }
  if (fs::is_directory(st)) {
    throw Error(ErrorCode::kInvalidArgument, what + " is not a regular file (a directory); pass a file");
  }
  if (!fs::is_regular_file(st)) {
    throw Error(ErrorCode::kInvalidArgument, what + " is not a regular file (a device, pipe or socket); pass a file");
  }
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw Error(ErrorCode::kSystemError, what + " cannot be sized (" + ec.message() + ")");
  if (size > maxBytes) {
    throw Error(ErrorCode::kInvalidArgument, what + " is " + std::to_string(size) + " bytes; the limit is " +
                                                 std::to_string(maxBytes) + " (" + mib(maxBytes) + ")");
  }
}

std::string readBoundedFile(const std::string& path, const std::string& what, std::uint64_t maxBytes) {
  checkBoundedFile(path, what, maxBytes);
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    throw Error(ErrorCode::kSystemError, what + " cannot be opened (" + std::string(std::strerror(errno)) + ")");
  }
  std::string text;
  char buf[65536];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, f.get());
    if (n > 0) {
      if (text.size() + n > maxBytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    what + " grew past the limit of " + std::to_string(maxBytes) + " bytes while it was read");
      }
      text.append(buf, n);
    }
    if (n < sizeof buf) break;
  }
  if (std::ferror(f.get()) != 0) throw Error(ErrorCode::kSystemError, what + " could not be read");
  return text;
}

}  // namespace copro::core

// libFuzzer target: Program JSON (core/program_json.cpp). Any input either parses or throws core::Error;
// anything else (a crash, another exception, a leak, a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "copro/core/program_json.hpp"
#include "copro/core/status.hpp"
#include "copro/core/validator.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const copro::core::Program p =
        copro::core::programFromJson(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)copro::core::programToJson(p, -1);
    (void)copro::core::validateProgram(p);  // what copro-info --validate does next
  } catch (const copro::core::Error&) {
  }
  return 0;
}

/// JSON dump and load of Programs. The writer omits fields that keep their defaults and puts one op per
/// line; the reader checks every name and type and says where (as a JSON path) a problem is.
#include "copro/core/program_json.hpp"
#include "copro/core/file_read.hpp"
#include "copro/core/limits.hpp"

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"

namespace copro::core {
namespace {

// Ordered: keys are written in a fixed, readable order ("op" first), not alphabetically.
using json = nlohmann::ordered_json;

constexpr const char* kFormat = "copro-program";
constexpr int kVersion = 1;
/// Deepest JSON nesting a Program file may have (it needs 8: root, ranks, rank, lanes, lane, ops, op, addr).
constexpr std::size_t kMaxJsonDepth = 64;

// ---- writing ---------------------------------------------------------------------------------------

json addrToJson(const Addr& a) {
  json j = json::object();
  if (a.rank != kSelf) j["rank"] = a.rank;
  j["buf"] = bufferName(a.buf);
  j["offset"] = a.offset;
  return j;
}

/// Which fields an op code uses: they are written even when they hold their default value, so a put from
/// input offset 0 still shows its src.
struct UsedFields {
  bool peer = false, dst = false, src = false, bytes = false, sem = false, value = false, reduce = false, srcs = false,
       ranks = false;
};

UsedFields usedFields(const Op& op) {
  UsedFields u;
  const bool signalled = op.sem >= 0;
  switch (op.code) {
    case OpCode::kPut:
      u.peer = u.dst = u.src = u.bytes = true;
      u.sem = u.value = signalled;
      break;
    case OpCode::kGet:
      u.peer = u.dst = u.src = u.bytes = true;
      break;
    case OpCode::kSignal:
      u.peer = u.sem = u.value = true;
      break;
    case OpCode::kWait:
      u.sem = u.value = true;
      break;
    case OpCode::kReduce:
      u.dst = u.srcs = u.bytes = u.reduce = true;
      break;
    case OpCode::kPutReduce:
      u.peer = u.dst = u.src = u.bytes = u.reduce = true;
      u.sem = u.value = signalled;
      break;
    case OpCode::kMulticast:
      u.ranks = u.dst = u.src = u.bytes = true;
      u.sem = u.value = signalled;
      break;
    case OpCode::kCopy:
      u.dst = u.src = u.bytes = true;
      break;
    case OpCode::kFlush:
      break;
  }
  return u;
}

json opToJson(const Op& op) {
  const Op d{};
  const UsedFields u = usedFields(op);
  json j = json::object();
  j["op"] = std::string(opCodeName(op.code));
  if (u.peer || op.peer != d.peer) j["peer"] = op.peer;
  if (u.ranks || !op.ranks.empty()) j["ranks"] = op.ranks;
  if (u.dst || op.dst != d.dst) j["dst"] = addrToJson(op.dst);
  if (u.src || op.src != d.src) j["src"] = addrToJson(op.src);
  if (u.srcs || !op.srcs.empty()) {
    json srcs = json::array();
    for (const Addr& a : op.srcs) srcs.push_back(addrToJson(a));
    j["srcs"] = std::move(srcs);
  }
  if (u.bytes || op.bytes != d.bytes) j["bytes"] = op.bytes;
  if (u.reduce || op.dtype != d.dtype) j["dtype"] = std::string(dataTypeName(op.dtype));
  if (u.reduce || op.redop != d.redop) j["redop"] = std::string(reduceOpName(op.redop));
  if (op.divisor != d.divisor) j["divisor"] = op.divisor;
  if (u.sem || op.sem != d.sem) j["sem"] = op.sem;
  if (u.value || op.value != d.value) j["value"] = op.value;
  if (op.indirect != d.indirect) {
    const Indirect di{};
    json ind = json::object();
    if (op.indirect.bytesSlot != di.bytesSlot) ind["bytesSlot"] = op.indirect.bytesSlot;
    if (op.indirect.srcOffsetSlot != di.srcOffsetSlot) ind["srcOffsetSlot"] = op.indirect.srcOffsetSlot;
    if (op.indirect.dstOffsetSlot != di.dstOffsetSlot) ind["dstOffsetSlot"] = op.indirect.dstOffsetSlot;
    if (op.indirect.bytesScale != di.bytesScale) ind["bytesScale"] = op.indirect.bytesScale;
    j["indirect"] = std::move(ind);
  }
  if (op.protocol != d.protocol) j["protocol"] = std::string(protocolName(op.protocol));
  return j;
}

json headerToJson(const ProgramHeader& h) {
  json j = json::object();
  j["name"] = h.name;
  j["nranks"] = h.nranks;
  j["numSemaphores"] = h.numSemaphores;
  j["scratchBytes"] = h.scratchBytes;
  j["layoutWords"] = h.layoutWords;
  if (!h.inputBytes.empty()) j["inputBytes"] = h.inputBytes;
  if (!h.outputBytes.empty()) j["outputBytes"] = h.outputBytes;
  if (!h.loadStoreDomains.empty()) j["loadStoreDomains"] = h.loadStoreDomains;
  return j;
}

// ---- reading ---------------------------------------------------------------------------------------

[[noreturn]] void parseFail(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::kParseError, path + ": " + what);
}

std::string typeName(const json& j) {
  return j.type_name();
}

std::string didYouMean(const std::string& word, const std::vector<std::string>& names) {
  const std::string hint = nearestName(word, names);
  return hint.empty() ? std::string() : " (did you mean '" + hint + "'?)";
}

/// An object whose keys are checked against the allowed ones when it is created.
class Obj {
 public:
  Obj(const json& j, std::string path, const std::vector<std::string>& allowed) : j_(j), path_(std::move(path)) {
    if (!j.is_object()) parseFail(path_, "expected an object, found " + typeName(j));
    for (const auto& item : j.items()) {
      bool known = false;
      for (const std::string& a : allowed) known = known || a == item.key();
      if (!known) parseFail(sub(item.key()), "unknown key '" + item.key() + "'" + didYouMean(item.key(), allowed));
    }
  }
  [[nodiscard]] std::string sub(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  [[nodiscard]] bool has(const char* key) const { return j_.contains(key); }
  [[nodiscard]] const json& at(const char* key) const {
    if (!j_.contains(key)) parseFail(sub(key), "missing");
    return j_.at(key);
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  const json& j_;
  std::string path_;
};

template <typename T>
T readInt(const json& j, const std::string& path) {
  if (!j.is_number_integer()) parseFail(path, "expected an integer, found " + typeName(j));
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
      parseFail(path, std::to_string(v) + " is out of range");
    }
    return static_cast<T>(v);
  }
  const auto v = j.get<std::int64_t>();
  if constexpr (std::is_unsigned_v<T>) {
    if (v < 0) parseFail(path, std::to_string(v) + " is negative");
    if (static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
      parseFail(path, std::to_string(v) + " is out of range");
    }
  } else {
    if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        v > static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
      parseFail(path, std::to_string(v) + " is out of range");
    }
  }
  return static_cast<T>(v);
}

template <typename T>
void readIntField(const Obj& o, const char* key, T& out) {
  if (o.has(key)) out = readInt<T>(o.at(key), o.sub(key));
}

std::string readString(const json& j, const std::string& path) {
  if (!j.is_string()) parseFail(path, "expected a string, found " + typeName(j));
  return j.get<std::string>();
}

const json& readArray(const json& j, const std::string& path) {
  if (!j.is_array()) parseFail(path, "expected an array, found " + typeName(j));
  return j;
}

template <typename T>
std::vector<T> readIntArray(const json& j, const std::string& path) {
  std::vector<T> out;
  const json& a = readArray(j, path);
  out.reserve(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out.push_back(readInt<T>(a[i], path + "[" + std::to_string(i) + "]"));
  return out;
}

BufferId parseBuffer(const json& j, const std::string& path) {
  const std::string s = readString(j, path);
  static const std::vector<std::string> kNames = {"input", "output", "scratch", "layout", "extra0"};
  for (int b = 0; b < kNumBuffers; ++b) {
    if (s == kNames[static_cast<std::size_t>(b)]) return static_cast<BufferId>(b);
  }
  if (s.size() > 5 && s.compare(0, 5, "extra") == 0) {
    const std::string digits = s.substr(5);
    bool ok = digits.size() <= 5 && (digits == "0" || digits[0] != '0');
    for (char c : digits) ok = ok && c >= '0' && c <= '9';
    if (ok) {
      const unsigned long i = std::stoul(digits);
      if (i <= std::numeric_limits<std::uint16_t>::max() - static_cast<unsigned long>(BufferId::kExtra0)) {
        return extraBuffer(static_cast<int>(i));
      }
    }
  }
  parseFail(path, "unknown buffer '" + s + "'" + didYouMean(s, kNames) +
                      "; buffers are input, output, scratch, layout, extra<i>");
}

Addr parseAddr(const json& j, const std::string& path) {
  const Obj o(j, path, {"rank", "buf", "offset"});
  Addr a;
  readIntField(o, "rank", a.rank);
  a.buf = parseBuffer(o.at("buf"), o.sub("buf"));
  readIntField(o, "offset", a.offset);
  return a;
}

std::vector<std::string> opNames() {
  std::vector<std::string> names;
  names.reserve(kNumOpCodes);
  for (int c = 0; c < kNumOpCodes; ++c) names.emplace_back(opCodeName(static_cast<OpCode>(c)));
  return names;
}

Op parseOp(const json& j, const std::string& path) {
  const Obj o(j, path,
              {"op", "peer", "ranks", "dst", "src", "srcs", "bytes", "dtype", "redop", "divisor", "sem", "value",
               "indirect", "protocol"});
  Op op;
  const std::string name = readString(o.at("op"), o.sub("op"));
  static const std::vector<std::string> kOps = opNames();
  bool found = false;
  for (int c = 0; c < kNumOpCodes && !found; ++c) {
    if (name == kOps[static_cast<std::size_t>(c)]) {
      op.code = static_cast<OpCode>(c);
      found = true;
    }
  }
  if (!found) parseFail(o.sub("op"), "unknown op '" + name + "'" + didYouMean(name, kOps));
  readIntField(o, "peer", op.peer);
  if (o.has("ranks")) op.ranks = readIntArray<std::int32_t>(o.at("ranks"), o.sub("ranks"));
  if (o.has("dst")) op.dst = parseAddr(o.at("dst"), o.sub("dst"));
  if (o.has("src")) op.src = parseAddr(o.at("src"), o.sub("src"));
  if (o.has("srcs")) {
    const json& a = readArray(o.at("srcs"), o.sub("srcs"));
    for (std::size_t i = 0; i < a.size(); ++i)
      op.srcs.push_back(parseAddr(a[i], o.sub("srcs") + "[" + std::to_string(i) + "]"));
  }
  readIntField(o, "bytes", op.bytes);
  if (o.has("dtype")) {
    const std::string s = readString(o.at("dtype"), o.sub("dtype"));
    const auto t = parseDataType(s);
    if (!t) {
      std::vector<std::string> names;
      names.reserve(kNumDataTypes);
      for (int i = 0; i < kNumDataTypes; ++i) names.emplace_back(dataTypeName(static_cast<DataType>(i)));
      parseFail(o.sub("dtype"), "unknown data type '" + s + "'" + didYouMean(s, names));
    }
    op.dtype = *t;
  }
  if (o.has("redop")) {
    const std::string s = readString(o.at("redop"), o.sub("redop"));
    const auto r = parseReduceOp(s);
    if (!r) {
      std::vector<std::string> names;
      names.reserve(kNumReduceOps);
      for (int i = 0; i < kNumReduceOps; ++i) names.emplace_back(reduceOpName(static_cast<ReduceOp>(i)));
      parseFail(o.sub("redop"), "unknown reduce op '" + s + "'" + didYouMean(s, names));
    }
    op.redop = *r;
  }
  readIntField(o, "divisor", op.divisor);
  readIntField(o, "sem", op.sem);
  readIntField(o, "value", op.value);
  if (o.has("indirect")) {
    const Obj ind(o.at("indirect"), o.sub("indirect"), {"bytesSlot", "srcOffsetSlot", "dstOffsetSlot", "bytesScale"});
    readIntField(ind, "bytesSlot", op.indirect.bytesSlot);
    readIntField(ind, "srcOffsetSlot", op.indirect.srcOffsetSlot);
    readIntField(ind, "dstOffsetSlot", op.indirect.dstOffsetSlot);
    readIntField(ind, "bytesScale", op.indirect.bytesScale);
  }
  if (o.has("protocol")) {
    const std::string s = readString(o.at("protocol"), o.sub("protocol"));
    if (!parseProtocol(s, op.protocol)) {
      parseFail(o.sub("protocol"), "unknown protocol '" + s + "'" + didYouMean(s, {"simple", "ll"}));
    }
  }
  return op;
}

ProgramHeader parseHeader(const json& j, const std::string& path) {
  const Obj o(j, path,
              {"name", "nranks", "numSemaphores", "scratchBytes", "layoutWords", "inputBytes", "outputBytes",
               "loadStoreDomains"});
  ProgramHeader h;
  if (o.has("name")) h.name = readString(o.at("name"), o.sub("name"));
  h.nranks = readInt<std::int32_t>(o.at("nranks"), o.sub("nranks"));
  if (h.nranks < 0 || h.nranks > kMaxRanks) {
    parseFail(o.sub("nranks"), std::to_string(h.nranks) + " is outside 0.." + std::to_string(kMaxRanks));
  }
  readIntField(o, "numSemaphores", h.numSemaphores);
  if (h.numSemaphores < 0 || h.numSemaphores > kMaxSemaphores) {
    parseFail(o.sub("numSemaphores"),
              std::to_string(h.numSemaphores) + " is outside 0.." + std::to_string(kMaxSemaphores));
  }
  readIntField(o, "scratchBytes", h.scratchBytes);
  readIntField(o, "layoutWords", h.layoutWords);
  const auto perRank = [&](const char* key, std::vector<std::uint64_t>& out) {
    if (!o.has(key)) return;
    out = readIntArray<std::uint64_t>(o.at(key), o.sub(key));
    if (out.size() != static_cast<std::size_t>(h.nranks)) {
      parseFail(o.sub(key), std::to_string(out.size()) + " entries for nranks " + std::to_string(h.nranks));
    }
  };
  perRank("inputBytes", h.inputBytes);
  perRank("outputBytes", h.outputBytes);
  if (o.has("loadStoreDomains")) {
    const json& a = readArray(o.at("loadStoreDomains"), o.sub("loadStoreDomains"));
    for (std::size_t i = 0; i < a.size(); ++i) {
      h.loadStoreDomains.push_back(
          readIntArray<std::int32_t>(a[i], o.sub("loadStoreDomains") + "[" + std::to_string(i) + "]"));
    }
  }
  return h;
}

Program parseProgram(const json& root) {
  const Obj o(root, "", {"format", "version", "header", "ranks"});
  const std::string format = readString(o.at("format"), "format");
  if (format != kFormat) parseFail("format", "expected '" + std::string(kFormat) + "', found '" + format + "'");
  const int version = readInt<int>(o.at("version"), "version");
  if (version != kVersion) {
    parseFail("version", "version " + std::to_string(version) + " is not supported (this copro reads version " +
                             std::to_string(kVersion) + ")");
  }
  ProgramHeader h = parseHeader(o.at("header"), "header");
  const json& ranksJson = readArray(o.at("ranks"), "ranks");
  if (ranksJson.size() != static_cast<std::size_t>(h.nranks)) {
    parseFail("ranks", std::to_string(ranksJson.size()) + " entries for header.nranks " + std::to_string(h.nranks));
  }
  std::vector<RankProgram> ranks(ranksJson.size());
  static const std::vector<std::string> kInits = {"proxy", "device", "offload"};
  for (std::size_t r = 0; r < ranksJson.size(); ++r) {
    const std::string rpath = "ranks[" + std::to_string(r) + "]";
    const Obj ro(ranksJson[r], rpath, {"lanes"});
    if (!ro.has("lanes")) continue;
    const json& lanes = readArray(ro.at("lanes"), ro.sub("lanes"));
    for (std::size_t l = 0; l < lanes.size(); ++l) {
      const std::string lpath = rpath + ".lanes[" + std::to_string(l) + "]";
      const Obj lo(lanes[l], lpath, {"initiation", "ops"});
      RankProgram::Lane lane;
      if (lo.has("initiation")) {
        const std::string s = readString(lo.at("initiation"), lo.sub("initiation"));
        bool found = false;
        for (std::size_t i = 0; i < kInits.size() && !found; ++i) {
          if (s == kInits[i]) {
            lane.initiation = static_cast<Initiation>(i);
            found = true;
          }
        }
        if (!found) parseFail(lo.sub("initiation"), "unknown initiation '" + s + "'" + didYouMean(s, kInits));
      }
      if (lo.has("ops")) {
        const json& ops = readArray(lo.at("ops"), lo.sub("ops"));
        lane.ops.reserve(ops.size());
        for (std::size_t k = 0; k < ops.size(); ++k) {
          lane.ops.push_back(parseOp(ops[k], lo.sub("ops") + "[" + std::to_string(k) + "]"));
        }
      }
      ranks[r].lanes.push_back(std::move(lane));
    }
  }
  return Program(std::move(h), std::move(ranks));
}

}  // namespace

std::string programToJson(const ProgramSource& program, int indent) {
  const ProgramHeader& h = program.header();
  if (indent < 0) {
    json root = json::object();
    root["format"] = kFormat;
    root["version"] = kVersion;
    root["header"] = headerToJson(h);
    json ranks = json::array();
    for (std::int32_t r = 0; r < h.nranks; ++r) {
      json lanes = json::array();
      for (const RankProgram::Lane& lane : program.rank(r).lanes) {
        json ops = json::array();
        for (const Op& op : lane.ops) ops.push_back(opToJson(op));
        lanes.push_back(json{{"initiation", std::string(initiationName(lane.initiation))}, {"ops", std::move(ops)}});
      }
      ranks.push_back(json{{"lanes", std::move(lanes)}});
    }
    root["ranks"] = std::move(ranks);
    return root.dump();
  }
  // Indented form: structure indented, one op per line, so a dump of a real Program stays readable
  // and diffs line by line.
  const std::string in1(static_cast<std::size_t>(indent), ' ');
  const auto pad = [&](int level) {
    std::string s;
    for (int i = 0; i < level; ++i) s += in1;
    return s;
  };
  std::ostringstream out;
  // Closes an array: on the same line when it is empty, else on a line of its own.
  const auto close = [&](bool empty, int level, const char* text) {
    if (!empty) out << '\n' << pad(level);
    out << text;
  };
  out << "{\n"
      << pad(1) << "\"format\": \"" << kFormat << "\",\n"
      << pad(1) << "\"version\": " << kVersion << ",\n"
      << pad(1) << "\"header\": " << headerToJson(h).dump() << ",\n"
      << pad(1) << "\"ranks\": [";
  for (std::int32_t r = 0; r < h.nranks; ++r) {
    out << (r == 0 ? "\n" : ",\n") << pad(2) << "{\"lanes\": [";
    const RankProgram& rp = program.rank(r);
    for (std::size_t l = 0; l < rp.lanes.size(); ++l) {
      const RankProgram::Lane& lane = rp.lanes[l];
      out << (l == 0 ? "\n" : ",\n") << pad(3) << "{\"initiation\": \"" << initiationName(lane.initiation)
          << "\", \"ops\": [";
      for (std::size_t k = 0; k < lane.ops.size(); ++k) {
        out << (k == 0 ? "\n" : ",\n") << pad(4) << opToJson(lane.ops[k]).dump();
      }
      close(lane.ops.empty(), 3, "]}");
    }
    close(rp.lanes.empty(), 2, "]}");
  }
  close(h.nranks == 0, 1, "]\n}\n");
  return out.str();
}

Program programFromJson(std::string_view text) {
  json root;
  // Checked while parsing: nesting depth (nlohmann's parser is iterative, but a deep tree is still a
  // mistake and costs memory) and duplicate keys, which nlohmann::json would silently resolve (last wins).
  std::vector<std::vector<std::string>> keysOfOpenObjects;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (static_cast<std::size_t>(depth) > kMaxJsonDepth) {
      throw Error(ErrorCode::kParseError,
                  "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels (the limit); a Program needs 8");
    }
    switch (event) {
      case json::parse_event_t::object_start:
        keysOfOpenObjects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keysOfOpenObjects.empty()) keysOfOpenObjects.pop_back();
        break;
      case json::parse_event_t::key: {
        if (keysOfOpenObjects.empty()) break;
        const std::string key = parsed.is_string() ? parsed.get<std::string>() : std::string();
        std::vector<std::string>& keys = keysOfOpenObjects.back();
        for (const std::string& k : keys) {
          if (k == key) throw Error(ErrorCode::kParseError, "duplicate JSON key '" + key + "' in one object");
        }
        keys.push_back(key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    root = json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {
    const auto* pe = dynamic_cast<const json::parse_error*>(&e);
    throw Error(ErrorCode::kParseError, "JSON syntax error" +
                                            (pe != nullptr ? " at byte " + std::to_string(pe->byte) : std::string()) +
                                            ": " + e.what());
  }
  return parseProgram(root);
}

void saveProgram(const ProgramSource& program, const std::string& path) {
  const std::string text = programToJson(program);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error(ErrorCode::kSystemError, "cannot open '" + path + "' for writing");
  f << text;
  f.close();
  if (!f) throw Error(ErrorCode::kSystemError, "writing '" + path + "' failed");
}

Program loadProgram(const std::string& path) {
  const std::string text = readBoundedFile(path, "Program file '" + path + "'");
  try {
    return programFromJson(text);
  } catch (const Error& e) {
    throw Error(e.code(), "Program file '" + path + "': " + e.message());
  }
}

}  // namespace copro::core

/// Study outcomes as bytes (study_records.hpp): a writer that appends fields in a fixed order and a reader
/// that takes them back in the same order, failing on a short or over-long record.
#include "study_records.hpp"

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace copro::tools::study {

namespace {

using core::Error;
using core::ErrorCode;

class ByteWriter {
 public:
  template <typename T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void text(const std::string& s) {
    pod(static_cast<std::uint64_t>(s.size()));
    out_ += s;
  }
  template <typename T>
  void pods(const std::vector<T>& v) {
    pod(static_cast<std::uint64_t>(v.size()));
    for (const T& x : v) pod(x);
  }
  [[nodiscard]] std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(const std::string& in) : in_(in) {}
  template <typename T>
  T pod() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string text() {
    const auto n = pod<std::uint64_t>();
    need(n);
    std::string s = in_.substr(at_, n);
    at_ += n;
    return s;
  }
  template <typename T>
  std::vector<T> pods() {
    const auto n = pod<std::uint64_t>();
    need(n * sizeof(T));  // before reserving: a corrupt count allocates nothing
    std::vector<T> v;
    v.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) v.push_back(pod<T>());
    return v;
  }
  void end() const {
    if (at_ != in_.size())
      throw Error(ErrorCode::kInternal, "study record: " + std::to_string(in_.size() - at_) +
                                            " bytes left over (ranks built from different sources?)");
  }

 private:
  void need(std::uint64_t n) const {
    if (n > in_.size() - at_)
      throw Error(ErrorCode::kInternal, "study record: cut short (ranks built from different sources?)");
  }
  const std::string& in_;
  std::size_t at_ = 0;
};

void putResult(ByteWriter& w, const sim::Result& r) {
  w.pod(r.time);
  w.pod(r.events);
  w.pod(r.flows);
  w.pod(r.ops);
  w.pod(r.bytesPut);
  w.pod(r.bytesDelivered);
  w.pod(r.peakActiveFlows);
  w.pod(r.rateRecomputations);
  w.pods(r.ranks);
  w.pods(r.channels);
  w.pod(r.wallSeconds);
  w.pod(r.stopped);
  w.pods(r.jobFinish);
  w.pod(r.symmetryMultiplicity);
}

sim::Result getResult(ByteReader& in) {
  sim::Result r;
  r.time = in.pod<core::Time>();
  r.events = in.pod<std::uint64_t>();
  r.flows = in.pod<std::uint64_t>();
  r.ops = in.pod<std::uint64_t>();
  r.bytesPut = in.pod<std::uint64_t>();
  r.bytesDelivered = in.pod<std::uint64_t>();
  r.peakActiveFlows = in.pod<std::size_t>();
  r.rateRecomputations = in.pod<std::uint64_t>();
  r.ranks = in.pods<sim::RankStats>();
  r.channels = in.pods<sim::ChannelStats>();
  r.wallSeconds = in.pod<double>();
  r.stopped = in.pod<bool>();
  r.jobFinish = in.pods<core::Time>();
  r.symmetryMultiplicity = in.pod<std::int32_t>();
  return r;
}

}  // namespace

std::string encodeOutcome(const StudyOutcome& o) {
  ByteWriter w;
  w.text(o.topologyName);
  w.text(o.algorithm);
  w.pod(o.ranks);
  w.pod(o.nodes);
  w.pod(o.bytes);
  w.pod(o.timeUs);
  w.pod(o.algbwGBps);
  w.pod(o.busbwGBps);
  w.pod(o.spineBytes);
  w.pod(o.networkBytes);
  w.pod(o.hostBytes);
  w.pod(o.bytesPut);
  w.pod(o.flows);
  w.pod(o.wallSeconds);
  return w.take();
}

StudyOutcome decodeStudyOutcome(const std::string& bytes) {
  ByteReader in(bytes);
  StudyOutcome o;
  o.topologyName = in.text();
  o.algorithm = in.text();
  o.ranks = in.pod<std::int32_t>();
  o.nodes = in.pod<std::int32_t>();
  o.bytes = in.pod<std::uint64_t>();
  o.timeUs = in.pod<double>();
  o.algbwGBps = in.pod<double>();
  o.busbwGBps = in.pod<double>();
  o.spineBytes = in.pod<std::uint64_t>();
  o.networkBytes = in.pod<std::uint64_t>();
  o.hostBytes = in.pod<std::uint64_t>();
  o.bytesPut = in.pod<std::uint64_t>();
  o.flows = in.pod<std::uint64_t>();
  o.wallSeconds = in.pod<double>();
  in.end();
  return o;
}

std::string encodeOutcome(const MoeOutcome& o) {
  ByteWriter w;
  const MoeSimResult& r = o.result;
  w.pod(r.dispatch);
  w.pod(r.combine);
  w.pod(r.stopped);
  for (double v :
       {r.dispatchGBps, r.combineGBps, r.recvRowsPerRank, r.sentRowsPerRank, r.dispatchSendGBps, r.combineSendGBps}) {
    w.pod(v);
  }
  for (std::uint64_t v : {r.scaleOutBytes, r.scaleUpBytes, r.dispatchScaleOutBytes, r.dispatchScaleUpBytes,
                          r.dispatchOps, r.combineOps}) {
    w.pod(v);
  }
  putResult(w, r.dispatchResult);
  putResult(w, r.combineResult);
  w.pod(o.wallSeconds);
  return w.take();
}

MoeOutcome decodeMoeOutcome(const std::string& bytes) {
  ByteReader in(bytes);
  MoeOutcome o;
  MoeSimResult& r = o.result;
  r.dispatch = in.pod<core::Time>();
  r.combine = in.pod<core::Time>();
  r.stopped = in.pod<bool>();
  for (double* v : {&r.dispatchGBps, &r.combineGBps, &r.recvRowsPerRank, &r.sentRowsPerRank, &r.dispatchSendGBps,
                    &r.combineSendGBps}) {
    *v = in.pod<double>();
  }
  for (std::uint64_t* v : {&r.scaleOutBytes, &r.scaleUpBytes, &r.dispatchScaleOutBytes, &r.dispatchScaleUpBytes,
                           &r.dispatchOps, &r.combineOps}) {
    *v = in.pod<std::uint64_t>();
  }
  r.dispatchResult = getResult(in);
  r.combineResult = getResult(in);
  o.wallSeconds = in.pod<double>();
  in.end();
  return o;
}

std::string encodeError(const std::exception_ptr& e) {
  ByteWriter w;
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    w.pod(err.code());
    w.text(err.message());
  } catch (const std::exception& err) {
    w.pod(ErrorCode::kInternal);
    w.text(err.what());
  } catch (...) {
    w.pod(ErrorCode::kInternal);
    w.text("an exception that is not a std::exception");
  }
  return w.take();
}

core::Error decodeError(const std::string& bytes, std::size_t index, int rank) {
  ByteReader in(bytes);
  const auto code = in.pod<ErrorCode>();
  const std::string message = in.text();
  in.end();
  return Error(code, message + " (point " + std::to_string(index) + ", on MPI rank " + std::to_string(rank) + ")");
}

}  // namespace copro::tools::study

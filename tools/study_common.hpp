#pragma once
/// What the what-if studies of copro-study share (docs/studies/README.md): a simulated case with the
/// knobs studies turn (placement of the ranks, PXN level, initiation per scale), a parallel runner over
/// independent Simulators, traffic per switch tier, and the writers of the CSV, markdown and index.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/collectives/moe.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/topologies/fabric.hpp"
#include "moe_sim.hpp"
#include "plot.hpp"
#include "sweep_shards.hpp"

namespace copro::tools::study {

/// How a study runs (copro-study's options).
struct StudyOptions {
  std::string outDir = "docs/studies";  ///< where <id>-<slug>.{csv,svg,md} and README.md go
  bool quick = false;                   ///< smaller sizes (ctest): seconds instead of minutes
  int jobs = 2;                         ///< simulations run at once (threads)
  bool quiet = false;                   ///< no per-case progress lines on stderr
  /// The MPI ranks of `mpirun -np N copro-study ...` (sweep_shards.hpp): each runs its share of a study's
  /// simulations, all get every result, rank 0 writes the files. Null: this process runs everything.
  const SweepShards* shards = nullptr;
};

/// One simulated collective call.
struct StudyCase {
  std::string topology;                ///< bundled name or file path
  std::vector<std::string> overrides;  ///< "key=value" for topo::loadTopology (builder or "sim.*" keys)
  collectives::CollectiveKind kind = collectives::CollectiveKind::kAllToAll;
  std::string algorithm = "pairwise";  ///< forced: a study compares like with like
  std::uint64_t size = 1U << 20;       ///< nccl-tests size S per rank (collective_sizes.hpp)
  std::int32_t ranks = 64;
  /// rank -> GPU index of the fabric; empty: rank r on GPU r (servers packed in order).
  std::vector<std::int32_t> placement;
  core::DataType dtype = core::DataType::kFloat32;
  std::int32_t pxnLevel = 0;  ///< CollectiveArgs::pxnLevel
  core::Initiation scaleUpInitiation = core::Initiation::kDevice;
  core::Initiation scaleOutInitiation = core::Initiation::kDevice;
};

/// What one case gave.
struct StudyOutcome {
  std::string topologyName;
  std::string algorithm;
  std::int32_t ranks = 0;
  std::int32_t nodes = 0;   ///< servers the ranks span
  std::uint64_t bytes = 0;  ///< the size S the count really moves
  double timeUs = 0;
  double algbwGBps = 0;
  double busbwGBps = 0;
  /// Bytes entering tier-1 (spine) switches from below: traffic that left its leaf.
  std::uint64_t spineBytes = 0;
  /// Bytes entering tier-0 (leaf) switches from NICs: everything that used the network.
  std::uint64_t networkBytes = 0;
  /// Bytes entering a server's host root complex (the simulator's slow path between planes or rails when
  /// the source's own NIC cannot reach the destination's; docs/simulator.md, "Routing").
  std::uint64_t hostBytes = 0;
  std::uint64_t bytesPut = 0;  ///< sim::Result::bytesPut
  std::uint64_t flows = 0;
  double wallSeconds = 0;
};

/// Runs one case on `fabric` (finalized; the case's topology). Throws core::Error for bad input.
StudyOutcome runStudyCase(const topo::Fabric& fabric, const StudyCase& c);

/// Runs every case, `o.jobs` at a time on threads (each with its own Simulator; fabrics are loaded once
/// and shared read-only), shared over the MPI ranks of `o.shards`. Results in the order of `cases`; the
/// first error is rethrown after the others finished. Unless `o.quiet`, one line per finished case on stderr.
std::vector<StudyOutcome> runStudyCases(const std::vector<StudyCase>& cases, const StudyOptions& o);
/// The same in this process alone.
std::vector<StudyOutcome> runStudyCases(const std::vector<StudyCase>& cases, int jobs, bool quiet);

/// Runs fn(0) .. fn(n-1), `jobs` at a time on threads; the first error is rethrown after all finished.
void parallelFor(std::size_t n, int jobs, const std::function<void(std::size_t)>& fn);

/// Runs fn(0) .. fn(n-1), `o.jobs` at a time on threads, each returning its result as bytes
/// (study_records.hpp). Under `o.shards` (mpirun) each rank runs the indices it owns and every rank gets
/// every result. The first error by index is rethrown on every rank after all finished: an error from
/// another rank as core::Error with its code and message, naming the point and the rank.
std::vector<std::string> shardedFor(std::size_t n, const StudyOptions& o,
                                    const std::function<std::string(std::size_t)>& fn);

/// One simulated MoE dispatch + combine (tools/moe_sim.hpp) on ranks 0..ranks-1 placed on GPUs 0..ranks-1.
struct MoeCase {
  std::string topology;                ///< bundled name or file path
  std::vector<std::string> overrides;  ///< "key=value" for topo::loadTopology
  std::int32_t ranks = 64;             ///< expert-parallel group
  std::int32_t tokens = 4096;          ///< per rank
  collectives::MoeConfig config;       ///< hidden, topk, experts, dtypes, max nodes per token, path
  double zipfExponent = 0;             ///< 0: uniform routing; else MoeRouting::zipf with this exponent
  std::uint64_t seed = 1;              ///< routing seed
  /// Rank -> node for routing and the plan; empty: the fabric's servers (moeNodeOfRank). A study that
  /// compares fabrics passes one map so that every fabric sees the same tokens going to the same experts.
  std::vector<int> nodeOfRank;
  std::string label;  ///< for the progress line
};

/// What one MoE case gave.
struct MoeOutcome {
  MoeSimResult result;
  double wallSeconds = 0;
};

/// Runs every MoE case, `o.jobs` at a time (fabrics loaded first on this thread, shared read-only), shared
/// over the MPI ranks of `o.shards`. Results in the order of `cases`; unless `o.quiet`, one line per finished
/// case on stderr.
std::vector<MoeOutcome> runMoeCases(const std::vector<MoeCase>& cases, const StudyOptions& o);
/// The same in this process alone.
std::vector<MoeOutcome> runMoeCases(const std::vector<MoeCase>& cases, int jobs, bool quiet);

/// DeepSeek-V3's MoE layer (arXiv:2412.19437, sections 2.1.2 and 3.2.2): hidden 7168, top-8 of 256 routed
/// experts, a token reaches at most 4 nodes, FP8 dispatch with scales, BF16 combine.
collectives::MoeConfig deepSeekV3MoeConfig(collectives::MoePath path);

/// The fabric's GPU indices of `count` servers chosen `stride` servers apart (server s, s + stride, ...),
/// all GPUs of each: a group spread over leaves. Throws core::Error when the fabric has too few servers.
std::vector<std::int32_t> spreadPlacement(const topo::Fabric& fabric, std::int32_t servers, std::int32_t stride);

/// Loads a topology (cached per (topology, overrides) for the life of the process; not thread-safe).
const topo::Fabric& loadFabric(const std::string& topology, const std::vector<std::string>& overrides = {});

// ---------------------------------------------------------------------------------------------------------
// Output

/// printf-style formatting of one value ("%.1f").
std::string fmt(const char* format, double v);
/// Bytes as "1 MiB", "16 MiB", "896 KiB", "917504 B" (exact binary units when they divide).
std::string bytesText(std::uint64_t bytes);

/// A markdown table built row by row.
class MarkdownTable {
 public:
  explicit MarkdownTable(std::vector<std::string> header, std::vector<bool> rightAligned = {});
  void addRow(std::vector<std::string> cells);
  [[nodiscard]] std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

/// Writes `text` to `path` (creating its folder); throws core::Error(kSystemError) naming the file.
void writeTextFile(const std::string& path, const std::string& text);

/// What runs the simulations: "2 thread(s)", or "4 MPI ranks of 2 thread(s)" in a sharded run.
std::string workersText(const StudyOptions& o);
/// Whether this process writes a study's files: not on the ranks above 0 of a sharded run.
bool writesFiles(const StudyOptions& o);
/// writeTextFile where this process writes the study's files (writesFiles), else nothing.
void writeStudyFile(const StudyOptions& o, const std::string& path, const std::string& text);
/// writeLineChart (plot.hpp) where this process writes the study's files, else nothing.
void writeStudyChart(const StudyOptions& o, const std::string& path, const std::vector<PlotSeries>& series,
                     const PlotOptions& options);

/// A registered study: copro-study <id>.
struct StudyInfo {
  std::string id;      ///< "a"
  std::string slug;    ///< "multiplane-vs-multirail": files <id>-<slug>.{csv,svg,md}
  std::string title;   ///< one line
  std::string script;  ///< studies/<id>-<slug>.sh
  /// Runs the study and writes its files; empty while the study is pending.
  std::function<void(const StudyOptions&)> run;
};

/// Every study, a to f, in order.
const std::vector<StudyInfo>& studyRegistry();
/// The study with this id; throws core::Error naming the known ids.
const StudyInfo& findStudy(const std::string& id);
/// `<outDir>/<id>-<slug>` (no extension).
std::string studyPrefix(const StudyOptions& o, const StudyInfo& s);
/// The command that reproduces a study with these options (for the markdown).
std::string reproduceCommand(const StudyOptions& o, const StudyInfo& s);

/// The line of a study's markdown that the index quotes starts with this marker.
inline constexpr const char* kHeadlineMarker = "**Headline.** ";

/// (Re)writes `<outDir>/README.md`: each study, its command and the headline of its markdown (read back
/// from `<outDir>/<id>-<slug>.md`), or "pending" where it has not been written.
void writeIndex(const StudyOptions& o);

// Studies (study_a.cpp .. study_f.cpp).
void runStudyA(const StudyOptions& o);
void runStudyB(const StudyOptions& o);
void runStudyC(const StudyOptions& o);
void runStudyD(const StudyOptions& o);
void runStudyE(const StudyOptions& o);
void runStudyF(const StudyOptions& o);

}  // namespace copro::tools::study

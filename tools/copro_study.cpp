// copro-study: the what-if studies of docs/studies/ (studies/README.md). One subcommand per study; each writes
// <id>-<slug>.csv, .svg and .md into --out (default docs/studies) and refreshes the index README.md there.
// Started by mpirun, the studies' simulations are shared over the MPI ranks and rank 0 writes the files
// (sweep_shards.hpp).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "cli_suggest.hpp"
#include "copro/core/status.hpp"
#include "study_common.hpp"

namespace {

namespace study = copro::tools::study;

int runCli(int argc, char** argv) {
  CLI::App app{"copro-study: what-if studies on the simulator; writes CSV, SVG and markdown (docs/studies/)"};
  app.require_subcommand(1);
  study::StudyOptions opts;
  auto addOptions = [&opts](CLI::App* sub) {
    sub->add_option("--out", opts.outDir, "output folder (default docs/studies)");
    sub->add_flag("--quick", opts.quick, "smaller sizes: seconds instead of minutes (ctest)");
    sub->add_option("--jobs,-j", opts.jobs, "simulations at once, on threads (default 2)")->check(CLI::Range(1, 256));
    sub->add_flag("--quiet,-q", opts.quiet, "no per-simulation lines on stderr");
  };
  std::vector<std::pair<CLI::App*, const study::StudyInfo*>> commands;
  for (const auto& s : study::studyRegistry()) {
    CLI::App* sub = app.add_subcommand(s.id, s.title + (s.run ? "" : " (pending)"));
    addOptions(sub);
    commands.emplace_back(sub, &s);
  }
  CLI::App* allCmd = app.add_subcommand("all", "every study that is implemented, then the index");
  addOptions(allCmd);
  CLI::App* indexCmd = app.add_subcommand("index", "rewrite OUT/README.md from the studies' markdown");
  indexCmd->add_option("--out", opts.outDir, "output folder (default docs/studies)");
  CLI::App* listCmd = app.add_subcommand("list", "the studies, their scripts and whether they are implemented");
  if (const int rc = copro::cli::parse(app, argc, argv); rc >= 0) return rc;

  try {
    if (listCmd->parsed()) {
      for (const auto& s : study::studyRegistry()) {
        std::printf("%s  %-36s %s%s\n", s.id.c_str(), (s.id + "-" + s.slug).c_str(), s.title.c_str(),
                    s.run ? "" : " [pending]");
      }
      return 0;
    }
    if (indexCmd->parsed()) {
      study::writeIndex(opts);
      std::printf("wrote %s/README.md\n", opts.outDir.c_str());
      return 0;
    }
    const copro::tools::SweepShards shards;
    if (shards.size() > 1) {
      opts.shards = &shards;
      if (shards.rank() == 0) {
        std::fprintf(stderr, "copro-study: simulations shared over %d MPI ranks; rank 0 writes the files\n",
                     shards.size());
      } else if (std::freopen("/dev/null", "w", stdout) == nullptr) {  // rank 0 reports what was written
        std::fprintf(stderr, "copro-study: rank %d could not silence its standard output\n", shards.rank());
      }
    }
    if (allCmd->parsed()) {
      for (const auto& s : study::studyRegistry()) {
        if (s.run) s.run(opts);
      }
      study::writeIndex(opts);
      return 0;
    }
    for (const auto& [sub, s] : commands) {
      if (!sub->parsed()) continue;
      if (!s->run) {
        std::fprintf(stderr,
                     "copro-study: study %s (%s) is pending: not implemented yet; 'copro-study list' shows "
                     "the studies that run\n",
                     s->id.c_str(), s->title.c_str());
        return 2;
      }
      s->run(opts);
      study::writeIndex(opts);
      return 0;
    }
  } catch (const copro::core::Error& e) {
    std::fprintf(stderr, "copro-study: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "copro-study: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return runCli(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "copro-study: %s\n", e.what());
    return 1;
  }
}

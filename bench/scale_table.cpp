// The cluster-scale table: each row is a copro-sim command line with a wall-time target (and, where the
// issue sets one, a memory target), run in a child process (fork + execv, stdout to a temporary file,
// stderr discarded), timed with a steady clock and measured with wait4's ru_maxrss. A run past
// capFactor x its target is stopped: the row misses its target whatever the rest would show, so its other
// runs are skipped.
#include "scale_table.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "copro/core/status.hpp"

namespace copro::bench {
namespace {

using core::Error;
using core::ErrorCode;

struct Row {
  std::string name;
  std::vector<std::string> args;  ///< after "copro-sim"
  std::string today;              ///< the issue's measurement before the work (2 cores, under load)
  double targetWallS;
  double targetRssMiB;  ///< 0: no memory target
};

const std::vector<Row>& rows() {
  static const std::vector<Row> r = {
      {"ring-1024",
       {"run", "-q", "--csv", "-t", "single-switch-1024", "-c", "allreduce", "-s", "64M", "-a", "ring"},
       "0.67 s, 10.5 MB",
       0.3,
       0},
      {"ring-4096",
       {"run", "-q", "--csv", "-t", "single-switch-4096", "-c", "allreduce", "-s", "64M", "-a", "ring"},
       "23 s",
       2.0,
       0},
      {"ring-16384",
       {"run", "-q", "--csv", "-t", "single-switch-16384", "-c", "allreduce", "-s", "64M", "-a", "ring"},
       "killed after 600 s",
       10.0,
       1e9 / 1048576.0},  // 1 GB
      {"a2a-pairwise-deepseek-1M",
       {"run", "-q", "--csv", "-t", "deepseek-v3", "-c", "alltoall", "-s", "1M", "-a", "pairwise"},
       "40 s",
       5.0,
       0},
      {"a2a-deepseek-64M",
       {"run", "-q", "--csv", "-t", "deepseek-v3", "-c", "alltoall", "-s", "64M"},
       "> 14.5 min, 1 GB",
       60.0,
       0},
      {"moe-ll-ep256",
       {"moe", "--csv", "-t", "deepseek-v3", "--ep", "256", "--tokens", "128", "--path", "direct"},
       "288 s",
       10.0,
       0},
      {"moe-forward-ep128",
       {"moe", "--csv", "-t", "deepseek-v3", "--ep", "128", "--tokens", "4096", "--path", "forward"},
       "52 s, 540 MB",
       10.0,
       0},
  };
  return r;
}

struct RunResult {
  bool finished = false;  ///< exited on its own
  int exitCode = -1;
  double wallS = 0;
  double peakRssMiB = 0;
  std::string lastLine;  ///< the last line of its stdout (the CSV row)
};

std::string lastLineOf(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::string last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

/// Runs `exe args` once; stops it after `capS` seconds.
RunResult runOnce(const std::string& exe, const std::vector<std::string>& args, double capS) {
  char tmpl[] = "/tmp/copro-scale-table-XXXXXX";
  const int outFd = mkstemp(tmpl);
  if (outFd < 0) throw Error(ErrorCode::kSystemError, std::string("mkstemp: ") + std::strerror(errno));
  std::vector<std::string> argvStore{exe};
  argvStore.insert(argvStore.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argvStore) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw Error(ErrorCode::kSystemError, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    dup2(outFd, STDOUT_FILENO);
    const int devNull = open("/dev/null", O_WRONLY);
    if (devNull >= 0) dup2(devNull, STDERR_FILENO);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  close(outFd);
  RunResult r;
  int status = 0;
  rusage ru{};
  for (;;) {
    const pid_t got = wait4(pid, &status, WNOHANG, &ru);
    r.wallS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (got == pid) break;
    if (r.wallS > capS) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &ru);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(r.wallS < 1.0 ? 2 : 20));
  }
  r.finished = WIFEXITED(status);
  r.exitCode = r.finished ? WEXITSTATUS(status) : -1;
  r.peakRssMiB = static_cast<double>(ru.ru_maxrss) / 1024.0;
  r.lastLine = lastLineOf(tmpl);
  unlink(tmpl);
  return r;
}

/// copro-sim next to this program (build tree: bench/ and tools/ are siblings; install: one bin/).
std::string findCoproSim(const std::string& given, const char* argv0) {
  std::vector<std::string> candidates;
  if (!given.empty()) {
    candidates.push_back(given);
  } else {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    std::string dir = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string(argv0);
    dir = dir.substr(0, dir.find_last_of('/') + 1);
    candidates = {dir + "copro-sim", dir + "../tools/copro-sim"};
  }
  for (const std::string& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) return c;
  }
  throw Error(ErrorCode::kInvalidArgument,
              "copro-sim not found (looked at " + candidates.front() +
                  (candidates.size() > 1 ? " and " + candidates.back() : "") +
                  "); build it (cmake --build build --target copro-sim) or pass --copro-sim PATH");
}

std::vector<const Row*> chooseRows(const std::vector<std::string>& names) {
  std::vector<const Row*> chosen;
  for (const Row& r : rows()) {
    bool want = names.empty();
    for (const std::string& n : names) want = want || n == "all" || r.name.rfind(n, 0) == 0;
    if (want) chosen.push_back(&r);
  }
  for (const std::string& n : names) {
    const bool known =
        n == "all" || std::any_of(rows().begin(), rows().end(), [&n](const Row& r) { return r.name.rfind(n, 0) == 0; });
    if (!known) {
      std::string all;
      for (const Row& r : rows()) all += " " + r.name;
      throw Error(ErrorCode::kInvalidArgument, "unknown table row '" + n + "'; rows (or a prefix):" + all);
    }
  }
  return chosen;
}

std::string commandOf(const Row& r) {
  std::string s = "copro-sim";
  for (const std::string& a : r.args) s += " " + a;
  return s;
}

struct RowOutcome {
  std::vector<RunResult> runs;
  double medianS = 0;
  double peakMiB = 0;
  bool complete = false;  ///< every run finished with status 0
  bool meets = false;
};

RowOutcome measureRow(const Row& row, const std::string& exe, const ScaleTableOptions& opt) {
  RowOutcome o;
  const double cap = std::max(5.0, row.targetWallS * opt.capFactor);
  for (int i = 0; i < opt.repeat; ++i) {
    std::fprintf(stderr, "  %s run %d/%d ...\n", row.name.c_str(), i + 1, opt.repeat);
    o.runs.push_back(runOnce(exe, row.args, cap));
    const RunResult& r = o.runs.back();
    o.peakMiB = std::max(o.peakMiB, r.peakRssMiB);
    if (!r.finished || r.exitCode != 0) break;  // stopped or failed: the row misses whatever the rest shows
  }
  o.complete =
      static_cast<int>(o.runs.size()) == opt.repeat &&
      std::all_of(o.runs.begin(), o.runs.end(), [](const RunResult& r) { return r.finished && r.exitCode == 0; });
  std::vector<double> walls;
  for (const RunResult& r : o.runs) walls.push_back(r.wallS);
  std::sort(walls.begin(), walls.end());
  o.medianS = walls[walls.size() / 2];
  o.meets = o.complete && o.medianS <= row.targetWallS && (row.targetRssMiB <= 0 || o.peakMiB <= row.targetRssMiB);
  return o;
}

std::string runsText(const RowOutcome& o) {
  std::ostringstream s;
  for (std::size_t i = 0; i < o.runs.size(); ++i) {
    const RunResult& r = o.runs[i];
    char b[64];
    if (!r.finished) {
      std::snprintf(b, sizeof b, "%s>%.1f (stopped)", i ? " " : "", r.wallS);
    } else if (r.exitCode != 0) {
      std::snprintf(b, sizeof b, "%s%.2f (exit %d)", i ? " " : "", r.wallS, r.exitCode);
    } else {
      std::snprintf(b, sizeof b, "%s%.2f", i ? " " : "", r.wallS);
    }
    s << b;
  }
  return s.str();
}

void writeJson(const std::string& path, const std::vector<const Row*>& chosen, const std::vector<RowOutcome>& out) {
  nlohmann::json j = nlohmann::json::array();
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    nlohmann::json runs = nlohmann::json::array();
    for (const RunResult& r : out[i].runs) {
      runs.push_back({{"wall_s", r.wallS},
                      {"finished", r.finished},
                      {"exit", r.exitCode},
                      {"peak_rss_mib", r.peakRssMiB},
                      {"output", r.lastLine}});
    }
    j.push_back({{"row", chosen[i]->name},
                 {"command", commandOf(*chosen[i])},
                 {"target_wall_s", chosen[i]->targetWallS},
                 {"target_rss_mib", chosen[i]->targetRssMiB},
                 {"median_wall_s", out[i].medianS},
                 {"peak_rss_mib", out[i].peakMiB},
                 {"meets_target", out[i].meets},
                 {"runs", runs}});
  }
  std::ofstream f(path);
  if (!f) throw Error(ErrorCode::kSystemError, "cannot write --json file '" + path + "'");
  f << j.dump(2) << "\n";
}

}  // namespace

int runScaleTable(const ScaleTableOptions& opt, const char* argv0) {
  if (opt.repeat < 1) throw Error(ErrorCode::kInvalidArgument, "--repeat must be at least 1");
  if (!(opt.capFactor >= 1.0)) throw Error(ErrorCode::kInvalidArgument, "--cap-factor must be at least 1");
  const std::vector<const Row*> chosen = chooseRows(opt.rows);
  if (opt.list) {
    for (const Row* r : chosen) {
      char target[48];
      std::snprintf(target, sizeof target, r->targetRssMiB > 0 ? "%.1f s, %.0f MiB" : "%.1f s", r->targetWallS,
                    r->targetRssMiB);
      std::printf("%-26s target %-16s %s\n", r->name.c_str(), target, commandOf(*r).c_str());
    }
    return 0;
  }
  const std::string exe = findCoproSim(opt.coproSim, argv0);
  std::printf("# copro-sim-bench --table: %s, median of %d run(s), a run stopped at %.1fx its target\n", exe.c_str(),
              opt.repeat, opt.capFactor);
  std::vector<RowOutcome> out;
  for (const Row* r : chosen) {
    std::fprintf(stderr, "row %s: %s\n", r->name.c_str(), commandOf(*r).c_str());
    out.push_back(measureRow(*r, exe, opt));
  }
  std::printf("\n%-26s %-20s %-14s %10s %10s %9s  %-30s %s\n", "row", "before (issue 14)", "target", "median s",
              "peak MiB", "result", "runs (wall s)", "command");
  bool all = true;
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const Row& r = *chosen[i];
    const RowOutcome& o = out[i];
    char target[48];
    std::snprintf(target, sizeof target, r.targetRssMiB > 0 ? "<= %.1f s, %.0f MiB" : "<= %.1f s", r.targetWallS,
                  r.targetRssMiB);
    std::printf("%-26s %-20s %-14s %10s %10.1f %9s  %-30s %s\n", r.name.c_str(), r.today.c_str(), target,
                o.complete ? std::to_string(o.medianS).substr(0, 8).c_str() : "-", o.peakMiB,
                o.meets ? "meets" : "MISSES", runsText(o).c_str(), commandOf(r).c_str());
    all = all && o.meets;
  }
  if (!opt.json.empty()) writeJson(opt.json, chosen, out);
  std::printf("\nRESULT: %s\n", all ? "every row meets its target" : "some rows miss their targets");
  return all ? 0 : 1;
}

}  // namespace copro::bench

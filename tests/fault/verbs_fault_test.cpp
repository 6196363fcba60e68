// Fault injection on the emulated verbs provider (docs/verbs.md, "Faults"): forked ranks bootstrapped over
// TCP run all-reduces on `verbs` while one rank gets COPRO_VERBS_EMU_FAULT (a QP that goes to error, a remote
// key that becomes invalid, a process that is killed). Every surviving rank's call must end with an error
// naming a peer rank, within COPRO_TIMEOUT, and no /dev/shm entry may be left behind. Also: with
// libibverbs.so.1 hidden (the VERBS_TEST_HIDE_LIBIBVERBS hook) copro still runs other backends, and `verbs`
// without a device fails naming COPRO_VERBS_PROVIDER. ctest runs each fault 3 times (label mp) and 20
// times (label fault) with --gtest_repeat. A child that dies of a signal reports which one, with a
// backtrace (fatal signals, std::terminate), so that a rare crash names its cause in the test's output.
#include <arpa/inet.h>
#include <dirent.h>
#include <execinfo.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../loopback_port.hpp"
#include "copro/copro.hpp"
#include "copro/transport/bootstrap_tcp.hpp"

namespace {

using copro::Communicator;
using copro::DataType;
using copro::ReduceOp;
using Clock = std::chrono::steady_clock;

constexpr int kRanks = 3;
constexpr double kTimeoutSec = 10;  // COPRO_TIMEOUT of the ranks

/// A loopback TCP port nobody listens on, for the root of a rendezvous (tests/loopback_port.hpp).
int unusedPort() {
  return copro::testing::unusedLoopbackPort();
}

std::set<std::string> shmEntries() {
  std::set<std::string> out;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) out.insert(e->d_name);
    closedir(d);
  }
  return out;
}

/// The pipe a forked rank reports through; the fatal-signal handler writes there too.
int gReportFd = -1;

void writeAll(int fd, const char* text) {
  (void)!write(fd, text, std::strlen(text));
}

/// A fatal signal in a rank: its name and a backtrace go to the report pipe and stderr, then the signal
/// kills the process as it would have (SA_RESETHAND restored the default action).
void reportFatalSignal(int sig) {
  void* frames[64];
  const int n = backtrace(frames, 64);
  for (const int fd : {gReportFd, static_cast<int>(STDERR_FILENO)}) {
    writeAll(fd, "\nfatal signal ");
    writeAll(fd, sigabbrev_np(sig) != nullptr ? sigabbrev_np(sig) : "?");
    writeAll(fd, " in a rank, backtrace:\n");
    backtrace_symbols_fd(frames, n, fd);
  }
  raise(sig);
}

/// In a forked rank: report fatal signals and std::terminate (an exception escaping a thread) through
/// `reportFd` (on an alternate stack, so a stack overflow is reported too).
void installCrashReporter(int reportFd) {
  gReportFd = reportFd;
  void* warm[1];
  (void)backtrace(warm, 1);  // loads the unwinder now: the handler must not allocate
  static std::byte altStack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = altStack;
  ss.ss_size = sizeof(altStack);
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = reportFatalSignal;
  sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (const int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGPIPE}) sigaction(sig, &sa, nullptr);
  std::set_terminate([] {
    std::string what = "std::terminate";
    try {
      if (auto e = std::current_exception()) std::rethrow_exception(e);
    } catch (const std::exception& e) {
      what += std::string(" (uncaught exception: ") + e.what() + ")";
    } catch (...) {
      what += " (uncaught non-standard exception)";
    }
    writeAll(gReportFd, ("\n" + what).c_str());
    std::abort();
  });
}

/// How a child ended, for the report: "killed by signal 11 (SIGSEGV, Segmentation fault)".
std::string describeStatus(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (!WIFSIGNALED(status)) return "status " + std::to_string(status);
  const int sig = WTERMSIG(status);
  const char* abbrev = sigabbrev_np(sig);
  return "killed by signal " + std::to_string(sig) + " (SIG" + (abbrev != nullptr ? abbrev : "?") + ", " +
         strsignal(sig) + ")";
}

struct Outcome {
  int exitCode = -1;  ///< -1: killed by a signal or by the watchdog
  int signal = 0;     ///< the signal that killed it (SIGKILL from the watchdog too)
  std::string text;   ///< what the rank reported, then how it ended when it did not exit
};

using RankBody = std::function<int(int rank, Communicator& comm, std::string& text)>;

/// Runs `body` in kRanks forked processes with a verbs communicator over the emulated provider; rank
/// `faultRank` gets COPRO_VERBS_EMU_FAULT=`fault`. Each child reports through a pipe; the watchdog kills
/// what still runs after `limitSec`.
std::vector<Outcome> runRanks(int faultRank, const std::string& fault, double limitSec, const RankBody& body) {
  const std::string root = "127.0.0.1:" + std::to_string(unusedPort());
  std::vector<pid_t> pids(kRanks);
  std::vector<int> pipes(kRanks);
  for (int r = 0; r < kRanks; ++r) {
    int fds[2];
    if (pipe(fds) != 0) std::abort();
    pids[static_cast<std::size_t>(r)] = fork();
    if (pids[static_cast<std::size_t>(r)] == 0) {
      close(fds[0]);
      installCrashReporter(fds[1]);
      std::string text;
      int code = 0;
      try {
        copro::Config config = copro::Config::fromEnvironment();
        config.verbsProvider = "emu";
        config.timeoutSec = kTimeoutSec;
        if (r == faultRank) config.verbsEmuFault = fault;
        setenv("COPRO_RANK", std::to_string(r).c_str(), 1);
        setenv("COPRO_WORLD_SIZE", std::to_string(kRanks).c_str(), 1);
        setenv("COPRO_ROOT_ADDR", root.c_str(), 1);
        setenv("COPRO_BOOTSTRAP_TOKEN", "verbs-fault-test-secret", 1);  // the environment form needs a secret
        copro::core::ExecutorOptions options;
        options.config = config;
        options.bootstrap = copro::transport::createEnvironmentBootstrap(config);
        std::vector<Communicator> comms = copro::createCommunicators("verbs", options);
        code = body(r, comms.at(0), text);
      } catch (const std::exception& e) {
        text = std::string("exception: ") + e.what();
        code = 3;
      }
      (void)!write(fds[1], text.data(), text.size());
      close(fds[1]);
      _exit(code);
    }
    close(fds[1]);
    pipes[static_cast<std::size_t>(r)] = fds[0];
  }
  std::vector<Outcome> out(kRanks);
  const auto deadline = Clock::now() + std::chrono::duration<double>(limitSec);
  for (int r = 0; r < kRanks; ++r) {
    const auto i = static_cast<std::size_t>(r);
    int status = 0;
    pid_t got = 0;
    while ((got = waitpid(pids[i], &status, WNOHANG)) == 0 && Clock::now() < deadline) usleep(5000);
    if (got == 0) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], &status, 0);
      out[i].text = "still running after " + std::to_string(limitSec) + " s (killed): ";
    }
    if (got != 0 && WIFEXITED(status)) out[i].exitCode = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) out[i].signal = WTERMSIG(status);
    char buf[2048];
    for (ssize_t n = 0; (n = read(pipes[i], buf, sizeof(buf))) > 0;)
      out[i].text.append(buf, static_cast<std::size_t>(n));
    close(pipes[i]);
    if (out[i].exitCode == -1) out[i].text += " [rank " + std::to_string(r) + ": " + describeStatus(status) + "]";
  }
  return out;
}

/// All-reduces until one fails: 0 when a call failed naming a rank within the timeout; 1 when all passed.
int reduceUntilFailure(int rank, Communicator& comm, std::string& text) {
  std::vector<float> in(20000), out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>((rank + 1) * (i % 7));
  for (int call = 0; call < 200; ++call) {
    const auto t0 = Clock::now();
    const copro::Status s = comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat32, ReduceOp::kSum).wait();
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    if (s.ok()) continue;
    text = s.toString() + " | call " + std::to_string(call) + " after " + std::to_string(took) + " s";
    if (took > kTimeoutSec) return 11;
    return s.toString().find("rank ") == std::string::npos ? 12 : 0;
  }
  text = "every call succeeded";
  return 1;
}

void expectEveryRankFailsNamingAPeer(const std::string& fault, int faultRank, bool faultRankDies) {
  const std::set<std::string> before = shmEntries();
  const auto t0 = Clock::now();
  const auto results = runRanks(faultRank, fault, 45, reduceUntilFailure);
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  for (int r = 0; r < kRanks; ++r) {
    const Outcome& o = results[static_cast<std::size_t>(r)];
    if (r == faultRank && faultRankDies) {
      EXPECT_EQ(o.signal, SIGKILL) << "the killed rank did not die of its SIGKILL: " << o.text;
      continue;
    }
    EXPECT_EQ(o.exitCode, 0) << fault << ", rank " << r << ": " << o.text;
    std::printf("%s rank %d: %s\n", fault.c_str(), r, o.text.c_str());
  }
  EXPECT_LT(took, 45.0);
  for (const std::string& e : shmEntries()) {
    // Another test may create segments meanwhile; the emulator uses none, so any new one named after
    // verbs would be a leak.
    EXPECT_TRUE(before.count(e) != 0 || e.find("verbs") == std::string::npos) << "leaked /dev/shm/" << e;
  }
}

TEST(VerbsFault, HealthyRunCompletes) {
  const auto results = runRanks(-1, "", 45, [](int rank, Communicator& comm, std::string& text) {
    std::vector<double> in(5000, rank + 1.0), out(in.size());
    for (int call = 0; call < 5; ++call) {
      const copro::Status s =
          comm.allReduce(in.data(), out.data(), in.size(), DataType::kFloat64, ReduceOp::kSum).wait();
      if (!s.ok()) {
        text = s.toString();
        return 1;
      }
      if (out[4999] != 6.0) {
        text = "wrong sum " + std::to_string(out[4999]);
        return 2;
      }
    }
    return 0;
  });
  for (int r = 0; r < kRanks; ++r)
    EXPECT_EQ(results[static_cast<std::size_t>(r)].exitCode, 0) << results[static_cast<std::size_t>(r)].text;
}

TEST(VerbsFault, QpToErrorFailsEveryRank) {
  expectEveryRankFailsNamingAPeer("qp-error@40", 1, false);
}

TEST(VerbsFault, InvalidRemoteKeyFailsEveryRank) {
  expectEveryRankFailsNamingAPeer("bad-rkey@40", 2, false);
}

TEST(VerbsFault, DeadPeerFailsEveryRank) {
  expectEveryRankFailsNamingAPeer("die@40", 0, true);
}

/// In a child: with libibverbs.so.1 hidden, `verbs` without the emulator fails naming the variable, and
/// the inproc backend still runs.
TEST(VerbsFault, RunsWithoutLibibverbs) {
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("VERBS_TEST_HIDE_LIBIBVERBS", "1", 1);
    int code = 0;
    try {
      copro::core::ExecutorOptions options;
      options.config.verbsProvider.clear();
      options.bootstrap = nullptr;
      options.nranks = 2;
      std::vector<Communicator> comms = copro::createCommunicators("inproc", options);
      if (comms.size() != 2) code = 4;
    } catch (const std::exception&) {
      code = 5;
    }
    try {
      copro::core::ExecutorOptions options;
      options.config.verbsProvider.clear();
      setenv("COPRO_RANK", "0", 1);  // a world of one rank
      setenv("COPRO_WORLD_SIZE", "1", 1);
      setenv("COPRO_ROOT_ADDR", ("127.0.0.1:" + std::to_string(unusedPort())).c_str(), 1);
      setenv("COPRO_BOOTSTRAP_TOKEN", "verbs-fault-test-secret", 1);
      options.bootstrap = copro::transport::createEnvironmentBootstrap(options.config);
      (void)copro::createCommunicators("verbs", options);
      code = code == 0 ? 6 : code;
    } catch (const std::exception& e) {
      if (std::string(e.what()).find("COPRO_VERBS_PROVIDER") == std::string::npos) {
        std::fprintf(stderr, "verbs without libibverbs: %s\n", e.what());
        code = 7;
      }
    }
    _exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "4/5: inproc failed; 6: verbs worked without a device; 7: error lacks the name";
}

}  // namespace

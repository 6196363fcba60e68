// The ucx backend between fork()ed processes bootstrapped by TCP (the environment form; no mpirun): results, a peer
// that dies (the survivors' calls fail naming it, well within COPRO_TIMEOUT), and a peer that never calls (a timeout
// naming it). Runs over UCX_TLS=tcp,self and shm,self.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
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

/// A loopback port for the rendezvous root, below the ephemeral range (tests/loopback_port.hpp).
int freePort() {
  return copro::testing::unusedLoopbackPort();
}

struct ChildResult {
  int exitCode = -1;
  std::string report;  ///< what the child wrote to its pipe
};

/// Runs `body(rank, comm, bootstrap, report)` in `n` forked processes that share a TCP rendezvous and a ucx
/// communicator; returns each child's exit code and report. A child that does not finish within
/// `limitSec` is killed (exit code -1).
std::vector<ChildResult> runChildren(
    int n, const std::string& tls, double timeoutSec, double limitSec,
    const std::function<int(int, Communicator&, copro::core::Bootstrap&, std::string&)>& body) {
  setenv("UCX_TLS", tls.c_str(), 1);
  copro::Config config = copro::Config::fromEnvironment();
  config.timeoutSec = timeoutSec;
  // The environment form of the TCP bootstrap: rank 0 (a child) listens. Nothing of the rendezvous runs
  // in this process, so fork() happens while it has a single thread (UCX's memory hooks take locks that
  // a thread of the parent could hold at the moment of the fork).
  const std::string root = "127.0.0.1:" + std::to_string(freePort());
  std::vector<pid_t> pids;
  std::vector<int> fds;
  for (int r = 0; r < n; ++r) {
    int p[2];
    if (pipe(p) != 0) std::abort();
    const pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      std::string report;
      int code = 0;
      try {
        copro::core::ExecutorOptions options;
        options.config = config;
        setenv("COPRO_RANK", std::to_string(r).c_str(), 1);
        setenv("COPRO_WORLD_SIZE", std::to_string(n).c_str(), 1);
        setenv("COPRO_ROOT_ADDR", root.c_str(), 1);
        setenv("COPRO_BOOTSTRAP_TOKEN", "ucx-fork-test-secret", 1);
        options.bootstrap = copro::transport::createEnvironmentBootstrap(config);
        options.nranks = n;
        std::vector<Communicator> comms = copro::createCommunicators("ucx", options);
        code = body(r, comms.at(0), *options.bootstrap, report);
      } catch (const std::exception& e) {
        report = std::string("exception: ") + e.what();
        code = 3;
      }
      const ssize_t w = write(p[1], report.data(), report.size());
      (void)w;
      close(p[1]);
      _exit(code);  // no atexit handlers of the parent's test framework in the child
    }
    close(p[1]);
    pids.push_back(pid);
    fds.push_back(p[0]);
  }
  std::vector<ChildResult> out(static_cast<std::size_t>(n));
  const auto deadline = Clock::now() + std::chrono::duration<double>(limitSec);
  for (int r = 0; r < n; ++r) {
    int status = 0;
    pid_t done = 0;
    while ((done = waitpid(pids[static_cast<std::size_t>(r)], &status, WNOHANG)) == 0 && Clock::now() < deadline) {
      usleep(10000);
    }
    if (done == 0) {
      kill(pids[static_cast<std::size_t>(r)], SIGKILL);
      waitpid(pids[static_cast<std::size_t>(r)], &status, 0);
    } else if (WIFEXITED(status)) {
      out[static_cast<std::size_t>(r)].exitCode = WEXITSTATUS(status);
    }
    char buf[4096];
    ssize_t got = 0;
    while ((got = read(fds[static_cast<std::size_t>(r)], buf, sizeof(buf))) > 0) {
      out[static_cast<std::size_t>(r)].report.append(buf, static_cast<std::size_t>(got));
    }
    close(fds[static_cast<std::size_t>(r)]);
  }
  return out;
}

/// An all-reduce of small integers checked against the reference; 0 when right.
int checkedAllReduce(int rank, Communicator& comm, std::string& report, std::uint64_t count) {
  const int n = comm.size();
  std::vector<float> in(count);
  std::vector<float> out(count, -1);
  for (std::uint64_t i = 0; i < count; ++i) in[i] = static_cast<float>((rank * 31 + i * 7) % 13);
  copro::Status s = comm.allReduce(in.data(), out.data(), count, DataType::kFloat32, ReduceOp::kSum).wait();
  if (!s.ok()) {
    report = s.toString();
    return 1;
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    float ref = 0;
    for (int r = 0; r < n; ++r) ref += static_cast<float>((r * 31 + i * 7) % 13);
    if (out[i] != ref) {
      report = "element " + std::to_string(i) + " is " + std::to_string(out[i]) + ", expected " + std::to_string(ref);
      return 2;
    }
  }
  return 0;
}

class UcxFork : public ::testing::TestWithParam<std::string> {};

TEST_P(UcxFork, AllReduceOverTcpBootstrap) {
  const auto results = runChildren(
      3, GetParam(), 20, 60, [](int rank, Communicator& comm, copro::core::Bootstrap&, std::string& report) {
        for (std::uint64_t count : {std::uint64_t{1}, std::uint64_t{1000}, std::uint64_t{300001}}) {
          const int rc = checkedAllReduce(rank, comm, report, count);
          if (rc != 0) return rc;
        }
        return 0;
      });
  for (std::size_t r = 0; r < results.size(); ++r) {
    EXPECT_EQ(results[r].exitCode, 0) << "rank " << r << ": " << results[r].report;
  }
}

TEST_P(UcxFork, DeadPeerFailsCallsNamingIt) {
  const double timeoutSec = 8;
  const auto results = runChildren(
      3, GetParam(), timeoutSec, 60,
      [&](int rank, Communicator& comm, copro::core::Bootstrap& boot, std::string& report) {
        int rc = checkedAllReduce(rank, comm, report, 1000);
        if (rc != 0) return rc;
        // Everyone is done with that call before rank 2 goes (a fast rank could otherwise see a slow one
        // fail rather than rank 2).
        if (!boot.barrier().ok()) return 12;
        if (rank == 2) _exit(0);  // dies without a word, communicator and all
        const auto t0 = Clock::now();
        std::vector<float> buf(1000, 1.0F);
        copro::Status s = comm.allReduce(buf.data(), buf.data(), buf.size(), DataType::kFloat32, ReduceOp::kSum).wait();
        const double took = std::chrono::duration<double>(Clock::now() - t0).count();
        report = s.toString() + " | after " + std::to_string(took) + " s";
        sleep(1);  // the other survivor must see rank 2 die, not this rank exit
        if (s.ok()) return 10;
        if (took > timeoutSec) return 11;
        return 0;
      });
  ASSERT_EQ(results.size(), 3U);
  EXPECT_EQ(results[2].exitCode, 0) << results[2].report;
  for (int r = 0; r < 2; ++r) {
    const ChildResult& c = results[static_cast<std::size_t>(r)];
    EXPECT_EQ(c.exitCode, 0) << "rank " << r << ": " << c.report;
    // Either this rank saw rank 2 die, or a peer that did told it (failed or aborted); both name a rank.
    EXPECT_NE(c.report.find("rank "), std::string::npos) << c.report;
    std::printf("rank %d: %s\n", r, c.report.c_str());
  }
  // At least one survivor names the dead rank itself.
  EXPECT_TRUE(results[0].report.find("rank 2") != std::string::npos ||
              results[1].report.find("rank 2") != std::string::npos)
      << results[0].report << "\n"
      << results[1].report;
}

TEST_P(UcxFork, MissingRankTimesOutNamingIt) {
  const double timeoutSec = 1.5;
  const auto results = runChildren(
      3, GetParam(), timeoutSec, 60, [&](int rank, Communicator& comm, copro::core::Bootstrap&, std::string& report) {
        if (rank == 1) {
          sleep(4);  // alive, but never calls
          report = "slept";
          _exit(0);
        }
        std::vector<float> buf(100, 1.0F);
        copro::Status s = comm.allReduce(buf.data(), buf.data(), buf.size(), DataType::kFloat32, ReduceOp::kSum).wait();
        report = s.toString();
        // Stay alive a little: a survivor that exits at once would make the other one see a dead peer
        // (kRemoteError) instead of its own timeout.
        sleep(2);
        return s.code() == copro::ErrorCode::kTimeout ? 0 : 1;
      });
  for (int r : {0, 2}) {
    const ChildResult& c = results[static_cast<std::size_t>(r)];
    EXPECT_EQ(c.exitCode, 0) << "rank " << r << ": " << c.report;
    EXPECT_NE(c.report.find("rank 1 never entered this call"), std::string::npos) << c.report;
  }
}

INSTANTIATE_TEST_SUITE_P(Tls, UcxFork, ::testing::Values("tcp,self", "shm,self"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param == "tcp,self" ? std::string("tcp") : std::string("shm");
                         });

}  // namespace

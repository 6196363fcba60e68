// The TCP bootstrap: rendezvous through a UniqueId and through the environment, with threads and with
// fork()ed processes; allGather, tagged send/recv, barrier and split; foreign connections rejected.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../../loopback_port.hpp"
#include "bootstrap_auth.hpp"
#include "copro/copro.hpp"
#include "mp_test_util.hpp"

namespace copro::testing {
namespace {

namespace detail = copro::transport::detail;

Config fastConfig(double timeoutSec = 20) {
  Config c;
  c.timeoutSec = timeoutSec;
  return c;
}

/// Exercises one bootstrap: allGather, tagged send/recv around a ring (tags sent out of order), barrier,
/// split by parity (and color -1 for one rank), allGather inside the split. Throws ChildFailure.
void exercise(core::Bootstrap& bs, int expectRank, int n) {
  CHILD_CHECK(bs.rank() == expectRank && bs.size() == n, "rank " << bs.rank() << " size " << bs.size());
  const int r = bs.rank();
  // allGather of a few bytes per rank.
  std::uint64_t mine[3] = {static_cast<std::uint64_t>(r), 1000u + static_cast<std::uint64_t>(r) * 7, ~0ull - r};
  std::vector<std::uint64_t> all(3 * static_cast<std::size_t>(n));
  CHILD_CHECK(bs.allGather(mine, all.data(), sizeof(mine)).ok(), "allGather");
  for (int q = 0; q < n; ++q) {
    CHILD_CHECK(all[3 * q] == static_cast<std::uint64_t>(q) &&
                    all[3 * q + 1] == 1000u + static_cast<std::uint64_t>(q) * 7 && all[3 * q + 2] == ~0ull - q,
                "allGather entry " << q);
  }
  // A larger allGather (not a multiple of anything).
  std::vector<std::uint8_t> big(70001);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 31 + r);
  std::vector<std::uint8_t> bigAll(big.size() * static_cast<std::size_t>(n));
  CHILD_CHECK(bs.allGather(big.data(), bigAll.data(), big.size()).ok(), "big allGather");
  for (int q = 0; q < n; ++q) {
    for (std::size_t i = 0; i < big.size(); i += 997) {
      CHILD_CHECK(bigAll[q * big.size() + i] == static_cast<std::uint8_t>(i * 31 + q),
                  "big allGather " << q << " " << i);
    }
  }
  // Send/recv with tags: two messages to the next rank, received in the opposite tag order.
  const int next = (r + 1) % n;
  const int prev = (r + n - 1) % n;
  const std::int32_t a = 100 + r;
  const std::int32_t b = 200 + r;
  CHILD_CHECK(bs.send(next, 7, &a, sizeof(a)).ok(), "send tag 7");
  CHILD_CHECK(bs.send(next, 9, &b, sizeof(b)).ok(), "send tag 9");
  std::int32_t gotB = 0;
  std::int32_t gotA = 0;
  CHILD_CHECK(bs.recv(prev, 9, &gotB, sizeof(gotB)).ok(), "recv tag 9");
  CHILD_CHECK(bs.recv(prev, 7, &gotA, sizeof(gotA)).ok(), "recv tag 7");
  CHILD_CHECK(gotA == 100 + prev && gotB == 200 + prev, "got " << gotA << " " << gotB);
  // A size mismatch is an error, not a crash.
  CHILD_CHECK(bs.send(next, 11, &a, sizeof(a)).ok(), "send tag 11");
  std::uint64_t wrong = 0;
  CHILD_CHECK(!bs.recv(prev, 11, &wrong, sizeof(wrong)).ok(), "size mismatch must fail");
  CHILD_CHECK(bs.barrier().ok(), "barrier");
  // Split: even and odd ranks, ordered by descending key; the last rank opts out when n > 2.
  const int color = (n > 2 && r == n - 1) ? -1 : r % 2;
  std::unique_ptr<core::Bootstrap> sub = bs.split(color, -r);
  if (color < 0) {
    CHILD_CHECK(sub == nullptr, "color -1 must give nullptr");
  } else {
    std::vector<int> members;
    for (int q = 0; q < n; ++q) {
      if (q % 2 == color && !(n > 2 && q == n - 1)) members.push_back(q);
    }
    std::vector<int> ordered(members.rbegin(), members.rend());  // key -q: descending old rank
    CHILD_CHECK(sub != nullptr && sub->size() == static_cast<int>(ordered.size()), "split size");
    CHILD_CHECK(ordered[static_cast<std::size_t>(sub->rank())] == r, "split rank " << sub->rank());
    std::vector<std::int32_t> got(ordered.size());
    const std::int32_t me = r;
    CHILD_CHECK(sub->allGather(&me, got.data(), sizeof(me)).ok(), "split allGather");
    for (std::size_t i = 0; i < ordered.size(); ++i) CHILD_CHECK(got[i] == ordered[i], "split member " << i);
    // Parent and child use the same sockets: interleave messages on both.
    if (sub->size() > 1) {
      const int sn = (sub->rank() + 1) % sub->size();
      const int sp = (sub->rank() + sub->size() - 1) % sub->size();
      CHILD_CHECK(sub->send(sn, 7, &me, sizeof(me)).ok(), "split send");
      std::int32_t x = -1;
      CHILD_CHECK(sub->recv(sp, 7, &x, sizeof(x)).ok() && x == ordered[static_cast<std::size_t>(sp)],
                  "split recv " << x);
    }
  }
  CHILD_CHECK(bs.barrier().ok(), "final barrier");
}

TEST(Bootstrap, ThreadsAllGatherSendRecvSplit) {
  for (int n : {1, 2, 4}) {
    const UniqueId id = getUniqueId();
    std::vector<std::string> errors(static_cast<std::size_t>(n));
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r) {
      threads.emplace_back([&, r] {
        try {
          auto bs = createBootstrap(id, r, n, fastConfig());
          exercise(*bs, r, n);
        } catch (const ChildFailure& f) {
          errors[static_cast<std::size_t>(r)] = f.message;
        } catch (const std::exception& e) {
          errors[static_cast<std::size_t>(r)] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < n; ++r) EXPECT_EQ(errors[static_cast<std::size_t>(r)], "") << "n=" << n << " rank " << r;
  }
}

/// Runs `n` forked ranks that bootstrap through `id` and exercise every Bootstrap operation.
ForkResult forkedJob(const UniqueId& id, int n) {
  return forkRanks(
      n,
      [&](int r) {
        auto bs = createBootstrap(id, r, n, fastConfig());
        exercise(*bs, r, n);
      },
      60);
}

TEST(Bootstrap, ForkedProcesses) {
  const int n = 3;
  const UniqueId id = getUniqueId();
  const ForkResult res = forkedJob(id, n);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

/// Opens a TCP connection to the root of `id` (the test knows the id's layout: IPv4 at bytes 8..11 and
/// the port at 12..13, network order; the token at 16..31).
int connectToRoot(const UniqueId& id) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  std::memcpy(&a.sin_addr.s_addr, id.internal.data() + 8, 4);
  std::memcpy(&a.sin_port, id.internal.data() + 12, 2);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST(Bootstrap, ForeignConnectionsAreRejectedAndTheJobCompletes) {
  const std::uint32_t seed = 20240611;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const int n = 3;
  const UniqueId id = getUniqueId();
  // Before the ranks arrive: random bytes, a short write then close, and a silent connection.
  const int junk = connectToRoot(id);
  ASSERT_GE(junk, 0);
  std::vector<std::uint8_t> noise(64);
  for (auto& b : noise) b = static_cast<std::uint8_t>(rng());
  ASSERT_EQ(write(junk, noise.data(), noise.size()), static_cast<ssize_t>(noise.size()));
  const int shortFd = connectToRoot(id);
  ASSERT_GE(shortFd, 0);
  ASSERT_EQ(write(shortFd, noise.data(), 10), 10);
  close(shortFd);
  const int silent = connectToRoot(id);
  ASSERT_GE(silent, 0);
  // Let the root see (and log) these before the fork below.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // A process with the right address but a wrong token, and one claiming a duplicate rank with the wrong
  // world size: both must be refused (they time out), the real job must finish.
  UniqueId forged = id;
  for (int i = 16; i < 32; ++i) forged.internal[static_cast<std::size_t>(i)] ^= 0x5a;
  std::string forgedError;
  std::thread intruder([&] {
    try {
      auto bs = createBootstrap(forged, 0, n, fastConfig(3));
      forgedError = "the forged id was accepted";
    } catch (const Error& e) {
      forgedError = e.what();
    }
  });
  const ForkResult res = forkedJob(id, n);
  EXPECT_TRUE(res.allZero()) << res.summary();
  intruder.join();
  EXPECT_NE(forgedError.find("bootstrap"), std::string::npos) << forgedError;
  EXPECT_EQ(forgedError.find("accepted"), std::string::npos) << forgedError;
  close(junk);
  close(silent);
}

/// The intruder: a process that knows the root's address and the job's public tag (e.g. sniffed
/// from a real hello) but not its secret. It claims a rank with a forged hello and answers the challenge
/// with a guessed proof. Returns what happened: "rejected" when the root closed the connection without
/// sending an address table.
std::string forgeHello(const UniqueId& id, int rank, int nranks) {
  const int fd = connectToRoot(id);
  if (fd < 0) return "could not connect";
  detail::Hello h{};
  h.magic = detail::kHelloMagic;
  h.version = detail::kBootstrapVersion;
  h.kind = detail::kHelloToRoot;
  h.rank = rank;
  h.nranks = nranks;
  const detail::RendezvousKey key = detail::makeRendezvousKey(id.internal.data() + 16, 16);
  std::memcpy(h.tag, key.tag.data(), sizeof(h.tag));
  h.ip = htonl(INADDR_LOOPBACK);
  h.port = htons(9);
  std::string out;
  detail::Challenge ch{};
  if (write(fd, &h, sizeof(h)) != static_cast<ssize_t>(sizeof(h))) {
    out = "hello not sent";
  } else if (read(fd, &ch, sizeof(ch)) != static_cast<ssize_t>(sizeof(ch))) {
    out = "no challenge";
  } else {
    std::uint8_t guess[detail::kMacBytes];
    std::memset(guess, 0x42, sizeof(guess));
    if (write(fd, guess, sizeof(guess)) != static_cast<ssize_t>(sizeof(guess))) {
      out = "proof not sent";
    } else {
      char table[64];
      out = read(fd, table, sizeof(table)) == 0 ? "rejected" : "got an answer to a forged proof";
    }
  }
  close(fd);
  return out;
}

TEST(Bootstrap, ForgedHelloWithoutTheSecretIsRejectedAndTheJobCompletes) {
  const int n = 3;
  const UniqueId id = getUniqueId();
  // First in line, claiming rank 2: before authentication this took rank 2's place and the job died.
  EXPECT_EQ(forgeHello(id, 2, n), "rejected");
  const ForkResult res = forkedJob(id, n);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Bootstrap, AFailedRendezvousSaysAnUnexpectedPeerTriedToJoin) {
  const UniqueId id = getUniqueId();
  EXPECT_EQ(forgeHello(id, 1, 2), "rejected");
  try {
    // Rank 1 never comes: the error must mention the intruder, not only the missing connection.
    auto bs = createBootstrap(id, 0, 2, fastConfig(1));
    ADD_FAILURE() << "a rendezvous with a missing rank succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("an unexpected peer tried to join"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
}

TEST(Bootstrap, WrongWorldSizeIsRejected) {
  const UniqueId id = getUniqueId();
  std::string err;
  std::thread bad([&] {
    // Arrives after rank 0 (which fixed the world size at 2) and before rank 1.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    try {
      auto bs = createBootstrap(id, 1, 5, fastConfig(2));
      err = "accepted";
    } catch (const Error& e) {
      err = e.what();
    }
  });
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      if (r == 1) std::this_thread::sleep_for(std::chrono::milliseconds(400));
      try {
        auto bs = createBootstrap(id, r, 2, fastConfig());
        if (!bs->barrier().ok()) errors[static_cast<std::size_t>(r)] = "barrier failed";
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : ranks) t.join();
  bad.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  EXPECT_EQ(err.find("accepted"), std::string::npos) << err;
}

/// The IPv4 listening sockets of this process: "a.b.c.d:port" of each (from /proc/net/tcp and
/// /proc/self/fd).
std::vector<std::string> ownListeners() {
  std::vector<std::string> inodes;
  for (int fd = 0; fd < 4096; ++fd) {
    char link[64] = {};
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
    if (n > 8 && std::strncmp(link, "socket:[", 8) == 0) inodes.emplace_back(link + 8, link + n - 1);
  }
  std::vector<std::string> out;
  FILE* f = std::fopen("/proc/net/tcp", "r");
  if (f == nullptr) return out;
  char line[512];
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    unsigned ip = 0;
    unsigned port = 0;
    unsigned state = 0;
    char inode[32] = {};
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (std::sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X %*s %*s %*s %*d %*d %31s", &ip, &port, &state, inode) != 4) {
      continue;
    }
    if (state != 0x0A || std::find(inodes.begin(), inodes.end(), std::string(inode)) == inodes.end()) continue;
    in_addr a{};
    a.s_addr = ip;  // /proc/net/tcp prints the address in host order of the network bytes
    out.push_back(std::string(inet_ntoa(a)) + ":" + std::to_string(port));
  }
  std::fclose(f);
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The root listens on the id's address only (here 127.0.0.2, not every interface); a rank's own listener
// on the address it reached the root from; both close once the job is wired up.
TEST(Bootstrap, ListenersBindTheConfiguredAddressAndCloseAfterWireUp) {
  if (access("/proc/net/tcp", R_OK) != 0) GTEST_SKIP() << "no /proc/net/tcp to read this process's listeners from";
  const std::vector<std::string> before = ownListeners();
  const UniqueId id = getUniqueId("127.0.0.2:0");
  std::vector<std::string> during;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string error0;
  std::thread rank0([&] {
    try {
      auto bs = createBootstrap(id, 0, 2, fastConfig());
      if (!bs->barrier().ok()) error0 = "barrier failed";
    } catch (const std::exception& e) {
      error0 = e.what();
    }
  });
  // Rank 0 is in: the root's listener and rank 0's (waiting for rank 1) are open.
  while (std::chrono::steady_clock::now() < deadline) {
    during.clear();
    for (const std::string& l : ownListeners()) {
      if (!contains(before, l)) during.push_back(l);
    }
    if (during.size() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto bs1 = createBootstrap(id, 1, 2, fastConfig());
  EXPECT_TRUE(bs1->barrier().ok());
  rank0.join();
  EXPECT_EQ(error0, "");
  ASSERT_EQ(during.size(), 2u) << "expected the root's and rank 0's listeners";
  int onRootAddr = 0;
  for (const std::string& l : during) {
    EXPECT_EQ(l.rfind("0.0.0.0:", 0), std::string::npos) << "a listener on every interface: " << l;
    EXPECT_EQ(l.rfind("127.", 0), 0u) << "a listener off the loopback the job uses: " << l;
    if (l.rfind("127.0.0.2:", 0) == 0) ++onRootAddr;
  }
  EXPECT_GE(onRootAddr, 1) << "the root does not listen on the id's address 127.0.0.2";
  // Wired up: both listeners close (the root's thread ends right after it sent the table).
  std::vector<std::string> left = during;
  while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::vector<std::string> now = ownListeners();
    left.erase(std::remove_if(left.begin(), left.end(), [&](const std::string& l) { return !contains(now, l); }),
               left.end());
  }
  EXPECT_TRUE(left.empty()) << "still listening after wire-up: " << left.front();
}

TEST(Bootstrap, BadArgumentsThrow) {
  const UniqueId id = getUniqueId();
  EXPECT_THROW(createBootstrap(id, 3, 3, fastConfig()), Error);
  EXPECT_THROW(createBootstrap(id, -1, 3, fastConfig()), Error);
  UniqueId zero;
  try {
    createBootstrap(zero, 0, 1, fastConfig());
    ADD_FAILURE() << "a zero id must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("UniqueId"), std::string::npos) << e.what();
  }
}

/// A loopback port for the rendezvous root, below the ephemeral range (tests/loopback_port.hpp).
int freePort() {
  return copro::testing::unusedLoopbackPort();
}

TEST(Bootstrap, EnvironmentForm) {
  const int n = 3;
  const std::string root = "127.0.0.1:" + std::to_string(freePort());
  const ForkResult res = forkRanks(
      n,
      [&](int r) {
        setenv("COPRO_RANK", std::to_string(r).c_str(), 1);
        setenv("COPRO_WORLD_SIZE", std::to_string(n).c_str(), 1);
        setenv("COPRO_ROOT_ADDR", root.c_str(), 1);
        setenv("COPRO_BOOTSTRAP_TOKEN", "test-token", 1);
        auto bs = createBootstrapFromEnvironment(fastConfig());
        exercise(*bs, r, n);
      },
      60);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

TEST(Bootstrap, EnvironmentFormNeedsASecretUnlessTheNetworkIsTrusted) {
  const int n = 2;
  const std::string root = "127.0.0.1:" + std::to_string(freePort());
  const ForkResult refused = forkRanks(
      1,
      [&](int) {
        setenv("COPRO_RANK", "0", 1);
        setenv("COPRO_WORLD_SIZE", "2", 1);
        setenv("COPRO_ROOT_ADDR", root.c_str(), 1);
        unsetenv("COPRO_BOOTSTRAP_TOKEN");
        try {
          createBootstrapFromEnvironment(fastConfig(2));
        } catch (const Error& e) {
          CHILD_CHECK(std::string(e.what()).find("COPRO_BOOTSTRAP_TOKEN is not set") != std::string::npos, e.what());
          CHILD_CHECK(std::string(e.what()).find("COPRO_BOOTSTRAP_TRUSTED") != std::string::npos, e.what());
          return;
        }
        CHILD_CHECK(false, "started without a secret");
      },
      20);
  EXPECT_TRUE(refused.allZero()) << refused.summary();
  const ForkResult trusted = forkRanks(
      n,
      [&](int r) {
        setenv("COPRO_RANK", std::to_string(r).c_str(), 1);
        setenv("COPRO_WORLD_SIZE", std::to_string(n).c_str(), 1);
        setenv("COPRO_ROOT_ADDR", root.c_str(), 1);
        unsetenv("COPRO_BOOTSTRAP_TOKEN");
        Config c = fastConfig();
        c.bootstrapTrusted = true;
        auto bs = createBootstrapFromEnvironment(c);
        exercise(*bs, r, n);
      },
      60);
  EXPECT_TRUE(trusted.allZero()) << trusted.summary();
}

TEST(Bootstrap, EnvironmentFormNamesMissingVariables) {
  const ForkResult res = forkRanks(
      1,
      [](int) {
        unsetenv("COPRO_RANK");
        setenv("COPRO_WORLD_SIZE", "2", 1);
        setenv("COPRO_ROOT_ADDR", "127.0.0.1:1", 1);
        try {
          createBootstrapFromEnvironment(fastConfig());
        } catch (const Error& e) {
          CHILD_CHECK(std::string(e.what()).find("COPRO_RANK") != std::string::npos, e.what());
          return;
        }
        CHILD_CHECK(false, "no error");
      },
      20);
  EXPECT_TRUE(res.allZero()) << res.summary();
}

}  // namespace
}  // namespace copro::testing

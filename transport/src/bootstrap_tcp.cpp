/// TCP rendezvous (UniqueId and environment forms) and the peer-to-peer Bootstrap built on it.
///
/// Wire format (little-endian host order: every rank runs on hosts of the same byte order):
/// - Hello (rank -> root, and rank -> lower rank's listener): 64 bytes, see `Hello`; then the HMAC-SHA-256
///   challenge-response of bootstrap_auth.hpp (listener: `Challenge`; connector: its 32-byte proof).
/// - Table (root -> rank): `TableHeader` then one `Endpoint` per rank.
/// - Frames on the mesh: `FrameHeader` then payload. A frame names its communicator (split children share
///   the sockets of their parent) and its tag; frames that arrive before they are asked for are stashed.
#include "copro/transport/bootstrap_tcp.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "bootstrap_auth.hpp"
#include "bootstrap_hello.hpp"
#include "copro/core/log.hpp"
#include "copro/core/status.hpp"

namespace copro::transport {

using core::Error;
using core::ErrorCode;
using core::Status;

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kIdMagic = 0x31444955'4f52504fULL;  // "OPROUID1"
using detail::Challenge;
using detail::Hello;
using detail::kHelloMagic;
using detail::RendezvousKey;
constexpr std::uint64_t kTableMagic = 0x31425454'4f52504fULL;  // "OPROTTB1"
constexpr std::uint64_t kFrameMagic = 0x314d5246'4f52504fULL;  // "OPROFRM1"
constexpr std::uint32_t kVersion = detail::kBootstrapVersion;
constexpr std::uint32_t kToRoot = detail::kHelloToRoot;
constexpr std::uint32_t kToPeer = detail::kHelloToPeer;
/// How long a connection may take to present its hello before it is dropped (a silent foreign
/// connection must not hold up the rendezvous).
constexpr double kHelloDeadlineSec = 5.0;

struct IdLayout {
  std::uint64_t magic;
  std::uint32_t ip;    // network order
  std::uint16_t port;  // network order
  std::uint16_t flags;
  std::uint8_t token[16];
};
static_assert(sizeof(IdLayout) <= UniqueId::kBytes);

struct TableHeader {
  std::uint64_t magic;
  std::int32_t nranks;
  std::int32_t pad;
};
struct Endpoint {
  std::uint32_t ip;
  std::uint16_t port;
  std::uint16_t pad;
};

struct FrameHeader {
  std::uint64_t magic;
  std::uint64_t comm;
  std::int32_t tag;
  std::int32_t internal;
  std::uint64_t bytes;
};

std::string errnoText(int e) {
  return std::string(std::strerror(e));
}

std::string endpointText(std::uint32_t ipNet, std::uint16_t portNet) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{};
  a.s_addr = ipNet;
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(portNet));
}

std::string peerText(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
  return endpointText(a.sin_addr.s_addr, a.sin_port);
}

double secondsLeft(Clock::time_point deadline) {
  return std::chrono::duration<double>(deadline - Clock::now()).count();
}

Clock::time_point deadlineIn(double sec) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(sec));
}

int pollMs(Clock::time_point deadline) {
  const double left = secondsLeft(deadline);
  if (left <= 0) return 0;
  return static_cast<int>(std::min(left * 1000.0 + 1.0, 1000.0));
}

void setNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void setNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/// Writes everything before `deadline`; fd is non-blocking.
Status writeAll(int fd, const void* data, std::size_t bytes, Clock::time_point deadline, const std::string& who) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (bytes > 0) {
    const ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      bytes -= static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (secondsLeft(deadline) <= 0) return {ErrorCode::kTimeout, "bootstrap: timed out sending to " + who};
      pollfd pfd{fd, POLLOUT, 0};
      poll(&pfd, 1, pollMs(deadline));
      continue;
    }
    return {ErrorCode::kRemoteError, "bootstrap: sending to " + who + " failed: " + errnoText(errno)};
  }
  return {};
}

/// Reads exactly `bytes` before `deadline`; fd is non-blocking. EOF is an error naming `who`.
Status readAll(int fd, void* data, std::size_t bytes, Clock::time_point deadline, const std::string& who) {
  auto* p = static_cast<std::uint8_t*>(data);
  while (bytes > 0) {
    const ssize_t n = ::recv(fd, p, bytes, 0);
    if (n > 0) {
      p += n;
      bytes -= static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return {ErrorCode::kRemoteError, "bootstrap: " + who + " closed the connection"};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (secondsLeft(deadline) <= 0) return {ErrorCode::kTimeout, "bootstrap: timed out waiting for " + who};
      pollfd pfd{fd, POLLIN, 0};
      poll(&pfd, 1, pollMs(deadline));
      continue;
    }
    return {ErrorCode::kRemoteError, "bootstrap: receiving from " + who + " failed: " + errnoText(errno)};
  }
  return {};
}

/// "host" or "host:port" -> IPv4 address and port (network order). Throws Error.
void resolve(const std::string& text, std::uint32_t& ipNet, std::uint16_t& portNet, bool requirePort,
             const std::string& what) {
  std::string host = text;
  std::string port;
  const auto colon = text.rfind(':');
  if (colon != std::string::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (requirePort && port.empty()) {
    throw Error(ErrorCode::kInvalidArgument, what + "='" + text + "' is not valid: expected host:port");
  }
  long portValue = 0;
  if (!port.empty()) {
    char* end = nullptr;
    portValue = std::strtol(port.c_str(), &end, 10);
    if (end != port.c_str() + port.size() || portValue < 0 || portValue > 65535) {
      throw Error(ErrorCode::kInvalidArgument, what + "='" + text + "': port '" + port + "' is not a number 0-65535");
    }
  }
  if (host.empty()) host = "127.0.0.1";
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    throw Error(ErrorCode::kSystemError,
                what + "='" + text + "': cannot resolve '" + host + "' to an IPv4 address: " + gai_strerror(rc));
  }
  ipNet = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr.s_addr;
  freeaddrinfo(res);
  portNet = htons(static_cast<std::uint16_t>(portValue));
}

/// A listening socket on ip:port (port 0: ephemeral); returns the fd and the bound port.
int listenOn(std::uint32_t ipNet, std::uint16_t& portNet, int backlog, const std::string& what) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(ErrorCode::kSystemError, what + ": socket() failed: " + errnoText(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = ipNet;
  a.sin_port = portNet;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, backlog) != 0) {
    const int e = errno;
    close(fd);
    throw Error(ErrorCode::kSystemError,
                what + ": cannot listen on " + endpointText(ipNet, portNet) + ": " + errnoText(e));
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  portNet = a.sin_port;
  setNonBlocking(fd);
  return fd;
}

/// Connects to ip:port, retrying refused connections (the listener may not be up yet) until `deadline`.
int connectTo(std::uint32_t ipNet, std::uint16_t portNet, Clock::time_point deadline, const std::string& who) {
  int delayMs = 1;
  while (true) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw Error(ErrorCode::kSystemError, "bootstrap: socket() failed: " + errnoText(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = ipNet;
    a.sin_port = portNet;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      setNonBlocking(fd);
      setNoDelay(fd);
      return fd;
    }
    const int e = errno;
    close(fd);
    if ((e != ECONNREFUSED && e != EINTR && e != ETIMEDOUT && e != EAGAIN) || secondsLeft(deadline) <= 0) {
      throw Error(e == ECONNREFUSED || e == ETIMEDOUT ? ErrorCode::kTimeout : ErrorCode::kSystemError,
                  "bootstrap: cannot connect to " + who + " at " + endpointText(ipNet, portNet) + ": " + errnoText(e));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delayMs));
    delayMs = std::min(delayMs * 2, 100);
  }
}

/// Connections this process's listeners rejected, per listener (its `who`, which names its address): a
/// count and the last one, so that a rendezvous that fails can say that an unexpected peer tried to join.
struct Rejected {
  std::uint64_t count = 0;
  std::string last;
};
std::mutex& rejectionsMutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, Rejected>& rejections() {
  static std::map<std::string, Rejected> r;
  return r;
}
void recordRejection(const std::string& listener, const std::string& text) {
  std::lock_guard<std::mutex> lock(rejectionsMutex());
  Rejected& r = rejections()[listener];
  ++r.count;
  r.last = text;
}
/// "" when `listener` rejected nothing, else a sentence to append to an error.
std::string intruderNote(const std::string& listener) {
  std::lock_guard<std::mutex> lock(rejectionsMutex());
  auto it = rejections().find(listener);
  if (it == rejections().end()) return {};
  return "; an unexpected peer tried to join: " + listener + " rejected " + std::to_string(it->second.count) +
         " connection(s), the last " + it->second.last;
}
std::string rootName(std::uint32_t ipNet, std::uint16_t portNet) {
  return "bootstrap root " + endpointText(ipNet, portNet);
}

/// Accepts connections until `want` hellos passed `accept` (which returns an empty string to accept,
/// else the reason to reject). Malformed or foreign connections are logged and closed; none of them can
/// block the others (every pending connection is polled with its own deadline).
struct Accepted {
  int fd;
  Hello hello;
};
std::vector<Accepted> acceptHellos(int listenFd, const int& want, Clock::time_point deadline, const std::string& who,
                                   const RendezvousKey& key, const std::function<std::string(const Hello&)>& accept) {
  struct Pending {
    int fd;
    Hello hello{};
    std::size_t got = 0;
    Clock::time_point deadline;
    bool challenged = false;  ///< the hello passed; now reading the connector's proof
    std::uint8_t nonce[16] = {};
    detail::Mac proof{};
  };
  std::vector<Pending> pending;
  std::vector<Accepted> out;
  auto reject = [&](Pending& p, const std::string& why) {
    const std::string from = peerText(p.fd);
    COPRO_LOG(Warn, Init, who << ": rejected connection from " << from << ": " << why);
    recordRejection(who, "from " + from + " (" + why + ")");
    close(p.fd);
    p.fd = -1;
  };
  // Reads what is available of `bytes` into `buf` from p's socket; false when p was rejected.
  auto readSome = [&](Pending& p, std::uint8_t* buf, std::size_t bytes, const char* what) {
    while (p.got < bytes) {
      const ssize_t n = ::recv(p.fd, buf + p.got, bytes - p.got, 0);
      if (n > 0) {
        p.got += static_cast<std::size_t>(n);
        continue;
      }
      if (n == 0) {
        reject(p, "closed after " + std::to_string(p.got) + " of " + std::to_string(bytes) + " " + what +
                      " bytes (short read)");
        return false;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        reject(p, errnoText(errno));
        return false;
      }
      break;
    }
    if (p.got < bytes && Clock::now() > p.deadline) {
      reject(p, std::string("no complete ") + what + " within " + std::to_string(kHelloDeadlineSec) + " s");
      return false;
    }
    return true;
  };
  while (static_cast<int>(out.size()) < want) {
    if (secondsLeft(deadline) <= 0) {
      for (Pending& p : pending) close(p.fd);
      for (Accepted& a : out) close(a.fd);
      throw Error(ErrorCode::kTimeout, who + ": timed out: " + std::to_string(out.size()) + " of " +
                                           std::to_string(want) + " expected connections arrived" + intruderNote(who));
    }
    std::vector<pollfd> fds;
    fds.push_back({listenFd, POLLIN, 0});
    for (const Pending& p : pending) fds.push_back({p.fd, POLLIN, 0});
    poll(fds.data(), fds.size(), std::min(pollMs(deadline), 100));
    if ((fds[0].revents & POLLIN) != 0) {
      while (true) {
        const int fd = accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        setNoDelay(fd);
        pending.push_back({fd, Hello{}, 0, deadlineIn(kHelloDeadlineSec)});
      }
    }
    for (Pending& p : pending) {
      if (p.fd < 0) continue;
      if (!p.challenged) {
        if (!readSome(p, reinterpret_cast<std::uint8_t*>(&p.hello), sizeof(Hello), "hello") || p.got < sizeof(Hello))
          continue;
        const Hello received = p.hello;
        std::string why = detail::parseHello(&received, sizeof(received), p.hello);
        if (why.empty() && std::memcmp(p.hello.tag, key.tag.data(), key.tag.size()) != 0) {
          why = "wrong rendezvous tag (another job's connection, or a different COPRO_BOOTSTRAP_TOKEN)";
        }
        if (!why.empty()) {
          reject(p, why);
          continue;
        }
        Challenge ch{};
        randomBytes(ch.nonce, sizeof(ch.nonce));
        std::memcpy(p.nonce, ch.nonce, sizeof(p.nonce));
        const detail::Mac mac = detail::listenerProof(key, p.hello, ch.nonce);
        std::memcpy(ch.mac, mac.data(), mac.size());
        // A fresh socket's buffer takes 48 bytes at once.
        if (::send(p.fd, &ch, sizeof(ch), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(ch))) {
          reject(p, "could not send the challenge: " + errnoText(errno));
          continue;
        }
        p.challenged = true;
        p.got = 0;
      }
      if (!readSome(p, p.proof.data(), p.proof.size(), "proof") || p.got < p.proof.size()) continue;
      const detail::Mac expected = detail::connectorProof(key, p.hello, p.nonce);
      std::string why = detail::sameMac(expected.data(), p.proof.data())
                            ? accept(p.hello)
                            : std::string("failed authentication: no proof of the job's secret");
      if (!why.empty()) {
        reject(p, why);
        continue;
      }
      out.push_back({p.fd, p.hello});
      p.fd = -1;
    }
    pending.erase(std::remove_if(pending.begin(), pending.end(), [](const Pending& p) { return p.fd < 0; }),
                  pending.end());
  }
  for (Pending& p : pending) {
    COPRO_LOG(Warn, Init, who << ": dropped an extra connection from " << peerText(p.fd));
    close(p.fd);
  }
  return out;
}

/// The connector's side of the challenge-response, after its hello: checks the listener's proof and
/// sends its own.
Status authenticate(int fd, const Hello& hello, const RendezvousKey& key, Clock::time_point deadline,
                    const std::string& who) {
  Challenge ch{};
  Status st = readAll(fd, &ch, sizeof(ch), deadline, who);
  if (!st.ok()) return st;
  const detail::Mac expected = detail::listenerProof(key, hello, ch.nonce);
  if (!detail::sameMac(expected.data(), ch.mac)) {
    return {ErrorCode::kRemoteError, who +
                                         " did not prove the job's secret (a different job's rendezvous, or a "
                                         "different COPRO_BOOTSTRAP_TOKEN)"};
  }
  const detail::Mac mine = detail::connectorProof(key, hello, ch.nonce);
  return writeAll(fd, mine.data(), mine.size(), deadline, who);
}

/// The root: collects one hello per rank, then sends the table to everyone. Runs in its own thread.
void runRoot(int listenFd, const RendezvousKey& key, double timeoutSec, const std::string& who) {
  const auto deadline = deadlineIn(timeoutSec);
  int nranks = -1;
  std::vector<bool> seen;
  try {
    // The rank count comes from the first hello with the right token; later hellos must agree.
    int want = 1;
    std::vector<Accepted> ranks = acceptHellos(listenFd, want, deadline, who, key, [&](const Hello& h) -> std::string {
      if (h.kind != kToRoot) return "not a hello to the root";
      if (h.nranks < 1) return "world size " + std::to_string(h.nranks);
      if (nranks >= 0 && h.nranks != nranks) {
        return "wrong world size " + std::to_string(h.nranks) + " (the others said " + std::to_string(nranks) + ")";
      }
      if (h.rank < 0 || h.rank >= h.nranks) {
        return "rank " + std::to_string(h.rank) + " out of range for world size " + std::to_string(h.nranks);
      }
      if (nranks >= 0 && seen[static_cast<std::size_t>(h.rank)]) return "duplicate rank " + std::to_string(h.rank);
      if (nranks < 0) {
        nranks = h.nranks;
        want = nranks;
        seen.assign(static_cast<std::size_t>(nranks), false);
      }
      seen[static_cast<std::size_t>(h.rank)] = true;
      return {};
    });
    std::vector<std::uint8_t> table(sizeof(TableHeader) + sizeof(Endpoint) * static_cast<std::size_t>(nranks));
    TableHeader th{kTableMagic, nranks, 0};
    std::memcpy(table.data(), &th, sizeof(th));
    for (const Accepted& a : ranks) {
      Endpoint e{a.hello.ip, a.hello.port, 0};
      std::memcpy(table.data() + sizeof(TableHeader) + sizeof(Endpoint) * static_cast<std::size_t>(a.hello.rank), &e,
                  sizeof(e));
    }
    for (const Accepted& a : ranks) {
      Status st = writeAll(a.fd, table.data(), table.size(), deadline, "rank " + std::to_string(a.hello.rank));
      if (!st.ok()) COPRO_LOG(Warn, Init, who << ": " << st.message());
      close(a.fd);
    }
    COPRO_LOG(Info, Init, who << ": " << nranks << " ranks connected; the address table is out");
  } catch (const std::exception& e) {
    COPRO_LOG(Warn, Init, who << ": " << e.what());
  }
  close(listenFd);
}

void startRoot(std::uint32_t ipNet, std::uint16_t& portNet, const RendezvousKey& key, double timeoutSec) {
  const int fd = listenOn(ipNet, portNet, 1024, "bootstrap root");
  // Detached: the thread owns only its socket and copies; it ends with the rendezvous or its deadline.
  std::thread([fd, key, timeoutSec, who = rootName(ipNet, portNet)] { runRoot(fd, key, timeoutSec, who); }).detach();
  COPRO_LOG(Info, Init, "bootstrap root listening on " << endpointText(ipNet, portNet));
}

// ---------------------------------------------------------------------------------------------------------
// The mesh of sockets between the ranks of one rendezvous, shared by the Bootstrap and its split children.

class TcpMesh {
 public:
  TcpMesh(int rank, std::vector<int> fds, double timeoutSec)
      : rank_(rank), fds_(std::move(fds)), timeoutSec_(timeoutSec) {}
  std::uint32_t localIp = 0;  ///< the address this rank reached the root from (network order)
  ~TcpMesh() {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  TcpMesh(const TcpMesh&) = delete;
  TcpMesh& operator=(const TcpMesh&) = delete;

  [[nodiscard]] int rank() const { return rank_; }

  Status send(int peer, std::uint64_t comm, int tag, bool internal, const void* data, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (peer == rank_) {
      const auto* p = static_cast<const std::uint8_t*>(data);
      stash_[{peer, comm, tag, internal}].emplace_back(p, p + bytes);
      return {};
    }
    const FrameHeader h{kFrameMagic, comm, tag, internal ? 1 : 0, bytes};
    const auto deadline = deadlineIn(timeoutSec_);
    const std::string who = "rank " + std::to_string(peer);
    COPRO_RETURN_IF_ERROR(writeAll(fds_[static_cast<std::size_t>(peer)], &h, sizeof(h), deadline, who));
    return writeAll(fds_[static_cast<std::size_t>(peer)], data, bytes, deadline, who);
  }

  Status recv(int peer, std::uint64_t comm, int tag, bool internal, void* data, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string who = "rank " + std::to_string(peer);
    const auto key = std::make_tuple(peer, comm, tag, internal);
    const auto deadline = deadlineIn(timeoutSec_);
    while (true) {
      auto it = stash_.find(key);
      if (it != stash_.end() && !it->second.empty()) {
        std::vector<std::uint8_t> msg = std::move(it->second.front());
        it->second.pop_front();
        if (it->second.empty()) stash_.erase(it);
        if (msg.size() != bytes) {
          return {ErrorCode::kInvalidUsage, "bootstrap: rank " + std::to_string(rank_) + " expected " +
                                                std::to_string(bytes) + " bytes from " + who + " (tag " +
                                                std::to_string(tag) + "), got " + std::to_string(msg.size())};
        }
        if (bytes > 0) std::memcpy(data, msg.data(), bytes);
        return {};
      }
      if (peer == rank_) {
        return {ErrorCode::kInvalidUsage,
                "bootstrap: recv from self with nothing sent (tag " + std::to_string(tag) + ")"};
      }
      FrameHeader h{};
      const int fd = fds_[static_cast<std::size_t>(peer)];
      Status st = readAll(fd, &h, sizeof(h), deadline, who);
      if (!st.ok()) {
        if (st.code() == ErrorCode::kTimeout) {
          return {ErrorCode::kTimeout, "bootstrap: rank " + std::to_string(rank_) + " timed out after " +
                                           std::to_string(timeoutSec_) + " s waiting for " + who};
        }
        return st;
      }
      if (h.magic != kFrameMagic) return {ErrorCode::kRemoteError, "bootstrap: corrupt frame from " + who};
      std::vector<std::uint8_t> payload(h.bytes);
      COPRO_RETURN_IF_ERROR(readAll(fd, payload.data(), payload.size(), deadline, who));
      stash_[{peer, h.comm, h.tag, h.internal != 0}].push_back(std::move(payload));
    }
  }

 private:
  int rank_;
  std::vector<int> fds_;
  double timeoutSec_;
  std::mutex mutex_;
  std::map<std::tuple<int, std::uint64_t, int, bool>, std::deque<std::vector<std::uint8_t>>> stash_;
};

/// Internal tags (separate from user tags by the frame's `internal` flag).
constexpr int kTagGather = 1;
constexpr int kTagScatter = 2;

class TcpBootstrap final : public core::Bootstrap {
 public:
  TcpBootstrap(std::shared_ptr<TcpMesh> mesh, std::uint64_t comm, std::vector<int> members, int rank)
      : mesh_(std::move(mesh)), comm_(comm), members_(std::move(members)), rank_(rank) {}

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return static_cast<int>(members_.size()); }
  [[nodiscard]] std::string localAddress() const override {
    char text[INET_ADDRSTRLEN] = {};
    in_addr a{};
    a.s_addr = mesh_->localIp;
    return inet_ntop(AF_INET, &a, text, sizeof(text)) != nullptr ? std::string(text) : std::string();
  }

  // Through rank 0 (gather, then send the whole table): no cycle of blocking sends, so any size works.
  Status allGather(const void* in, void* out, std::size_t bytes) override {
    auto* o = static_cast<std::uint8_t*>(out);
    const int n = size();
    if (rank_ == 0) {
      if (bytes > 0) std::memmove(o, in, bytes);
      for (int r = 1; r < n; ++r) {
        COPRO_RETURN_IF_ERROR(
            mesh_->recv(world(r), comm_, kTagGather, true, o + bytes * static_cast<std::size_t>(r), bytes));
      }
      for (int r = 1; r < n; ++r) {
        COPRO_RETURN_IF_ERROR(mesh_->send(world(r), comm_, kTagScatter, true, o, bytes * static_cast<std::size_t>(n)));
      }
      return {};
    }
    COPRO_RETURN_IF_ERROR(mesh_->send(world(0), comm_, kTagGather, true, in, bytes));
    return mesh_->recv(world(0), comm_, kTagScatter, true, o, bytes * static_cast<std::size_t>(n));
  }

  Status barrier() override {
    std::vector<std::uint8_t> all(static_cast<std::size_t>(size()));
    const std::uint8_t one = 1;
    return allGather(&one, all.data(), 1);
  }

  Status send(int peer, int tag, const void* data, std::size_t bytes) override {
    COPRO_RETURN_IF_ERROR(checkPeer(peer));
    return mesh_->send(world(peer), comm_, tag, false, data, bytes);
  }
  Status recv(int peer, int tag, void* data, std::size_t bytes) override {
    COPRO_RETURN_IF_ERROR(checkPeer(peer));
    return mesh_->recv(world(peer), comm_, tag, false, data, bytes);
  }

  std::unique_ptr<core::Bootstrap> split(int color, int key) override {
    const int n = size();
    std::int32_t mine[2] = {color, key};
    std::vector<std::int32_t> all(2 * static_cast<std::size_t>(n));
    allGather(mine, all.data(), sizeof(mine)).throwIfError();
    const std::uint64_t round = ++splits_;
    if (color < 0) return nullptr;
    std::vector<std::pair<int, int>> group;  // (key, old rank)
    for (int r = 0; r < n; ++r) {
      if (all[2 * static_cast<std::size_t>(r)] == color)
        group.emplace_back(all[2 * static_cast<std::size_t>(r) + 1], r);
    }
    std::sort(group.begin(), group.end());
    std::vector<int> members;
    int newRank = -1;
    for (const auto& g : group) {
      if (g.second == rank_) newRank = static_cast<int>(members.size());
      members.push_back(world(g.second));
    }
    // Every member derives the same id from (parent, round, color) without talking.
    std::uint64_t id = comm_ ^ 0x9e3779b97f4a7c15ULL;
    for (std::uint64_t v : {round, static_cast<std::uint64_t>(static_cast<std::uint32_t>(color))}) {
      id ^= v + 0x9e3779b97f4a7c15ULL + (id << 6) + (id >> 2);
      id *= 0xff51afd7ed558ccdULL;
    }
    return std::make_unique<TcpBootstrap>(mesh_, id, std::move(members), newRank);
  }

 private:
  [[nodiscard]] int world(int r) const { return members_[static_cast<std::size_t>(r)]; }
  [[nodiscard]] Status checkPeer(int peer) const {
    if (peer >= 0 && peer < size()) return {};
    return {ErrorCode::kInvalidArgument,
            "bootstrap: peer " + std::to_string(peer) + " is out of range (size " + std::to_string(size()) + ")"};
  }

  std::shared_ptr<TcpMesh> mesh_;
  std::uint64_t comm_;
  std::vector<int> members_;  ///< world rank of each member
  int rank_;
  std::uint64_t splits_ = 0;
};

/// The rank side of the rendezvous: hello to the root, table, then the mesh.
std::shared_ptr<core::Bootstrap> joinRendezvous(std::uint32_t rootIp, std::uint16_t rootPort, const RendezvousKey& key,
                                                int rank, int nranks, double timeoutSec) {
  const auto deadline = deadlineIn(timeoutSec);
  const std::string me = "bootstrap rank " + std::to_string(rank);
  const int rootFd = connectTo(rootIp, rootPort, deadline, "the bootstrap root");
  // Our listener binds to the interface that reaches the root.
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  getsockname(rootFd, reinterpret_cast<sockaddr*>(&local), &len);
  std::uint16_t myPort = 0;
  int listenFd = -1;
  try {
    listenFd = listenOn(local.sin_addr.s_addr, myPort, std::max(16, nranks), me);
  } catch (...) {
    close(rootFd);
    throw;
  }
  auto cleanup = [&] {
    if (listenFd >= 0) close(listenFd);
  };
  Hello h{};
  h.magic = kHelloMagic;
  h.version = kVersion;
  h.kind = kToRoot;
  h.rank = rank;
  h.nranks = nranks;
  std::memcpy(h.tag, key.tag.data(), key.tag.size());
  h.ip = local.sin_addr.s_addr;
  h.port = myPort;
  randomBytes(h.nonce, sizeof(h.nonce));
  Status st = writeAll(rootFd, &h, sizeof(h), deadline, "the bootstrap root");
  if (st.ok()) st = authenticate(rootFd, h, key, deadline, "the bootstrap root");
  TableHeader th{};
  if (st.ok()) st = readAll(rootFd, &th, sizeof(th), deadline, "the bootstrap root");
  std::vector<Endpoint> table(static_cast<std::size_t>(nranks));
  if (st.ok() && (th.magic != kTableMagic || th.nranks != nranks)) {
    st = Status(ErrorCode::kRemoteError, "the bootstrap root sent a malformed table");
  }
  if (st.ok()) st = readAll(rootFd, table.data(), sizeof(Endpoint) * table.size(), deadline, "the bootstrap root");
  close(rootFd);
  if (!st.ok()) {
    cleanup();
    throw Error(st.code(), me +
                               ": rendezvous with the root failed (did every rank get the same id and world size "
                               "and is rank " +
                               std::to_string(rank) + " unique?): " + st.message() +
                               intruderNote(rootName(rootIp, rootPort)));
  }

  std::vector<int> fds(static_cast<std::size_t>(nranks), -1);
  try {
    // Higher ranks connect to lower ranks' listeners.
    for (int peer = 0; peer < rank; ++peer) {
      const Endpoint& e = table[static_cast<std::size_t>(peer)];
      const int fd = connectTo(e.ip, e.port, deadline, "rank " + std::to_string(peer));
      Hello ph = h;
      ph.kind = kToPeer;
      randomBytes(ph.nonce, sizeof(ph.nonce));
      Status ws = writeAll(fd, &ph, sizeof(ph), deadline, "rank " + std::to_string(peer));
      if (ws.ok()) ws = authenticate(fd, ph, key, deadline, "rank " + std::to_string(peer));
      fds[static_cast<std::size_t>(peer)] = fd;
      if (!ws.ok()) throw Error(ws.code(), me + ": " + ws.message());
    }
    const int want = nranks - 1 - rank;
    const std::string listener = me + " (listener " + endpointText(local.sin_addr.s_addr, myPort) + ")";
    auto accepted = acceptHellos(listenFd, want, deadline, listener, key, [&](const Hello& ph) -> std::string {
      if (ph.kind != kToPeer) return "not a peer hello";
      if (ph.nranks != nranks) return "wrong world size " + std::to_string(ph.nranks);
      if (ph.rank <= rank || ph.rank >= nranks) return "unexpected rank " + std::to_string(ph.rank);
      if (fds[static_cast<std::size_t>(ph.rank)] >= 0) return "duplicate rank " + std::to_string(ph.rank);
      fds[static_cast<std::size_t>(ph.rank)] = -2;  // reserved until accepted
      return {};
    });
    for (const Accepted& a : accepted) fds[static_cast<std::size_t>(a.hello.rank)] = a.fd;
  } catch (...) {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
    cleanup();
    throw;
  }
  cleanup();
  COPRO_LOG(Info, Init, me << " of " << nranks << ": connected to every peer");
  auto mesh = std::make_shared<TcpMesh>(rank, std::move(fds), timeoutSec);
  mesh->localIp = local.sin_addr.s_addr;
  std::vector<int> members(static_cast<std::size_t>(nranks));
  for (int r = 0; r < nranks; ++r) members[static_cast<std::size_t>(r)] = r;
  return std::make_shared<TcpBootstrap>(std::move(mesh), 0, std::move(members), rank);
}

void checkRankSize(int rank, int nranks, const std::string& what) {
  if (nranks < 1)
    throw Error(ErrorCode::kInvalidArgument, what + ": world size must be >= 1, got " + std::to_string(nranks));
  if (rank < 0 || rank >= nranks) {
    throw Error(ErrorCode::kInvalidArgument,
                what + ": rank " + std::to_string(rank) + " is out of range for world size " + std::to_string(nranks));
  }
}

/// The environment bootstrap's variables: those `config` was given, else the environment's (parsed by
/// Config's table, so a malformed value is an error naming the variable).
core::Config bootstrapVariables(const core::Config& config) {
  core::Config c = config;
  c.readEnvironment({"COPRO_RANK", "COPRO_WORLD_SIZE", "COPRO_ROOT_ADDR", "COPRO_BOOTSTRAP_TOKEN"});
  auto require = [](bool given, const char* name) {
    if (!given) {
      throw Error(ErrorCode::kInvalidArgument, std::string(name) +
                                                   " is not set (the environment bootstrap needs "
                                                   "COPRO_RANK, COPRO_WORLD_SIZE and COPRO_ROOT_ADDR)");
    }
  };
  require(c.rank >= 0, "COPRO_RANK");
  require(c.worldSize > 0, "COPRO_WORLD_SIZE");
  require(!c.rootAddr.empty(), "COPRO_ROOT_ADDR");
  return c;
}

}  // namespace

void randomBytes(void* out, std::size_t bytes) {
  auto* p = static_cast<std::uint8_t*>(out);
  while (bytes > 0) {
    const ssize_t n = getrandom(p, bytes, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::kSystemError, "getrandom failed: " + errnoText(errno));
    }
    p += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

UniqueId createUniqueId(const std::string& bindAddr, const core::Config& config) {
  std::string addr = bindAddr;
  if (addr.empty()) {
    core::Config env = config;
    env.readEnvironment({"COPRO_BOOTSTRAP_ADDR"});
    addr = env.bootstrapAddr.empty() ? "127.0.0.1" : env.bootstrapAddr;
  }
  std::uint32_t ip = 0;
  std::uint16_t port = 0;
  resolve(addr, ip, port, false, "bootstrap address");
  std::array<std::uint8_t, 16> token{};
  randomBytes(token.data(), token.size());
  // The id's random token is the job's secret: it travels only inside the id (out of band).
  startRoot(ip, port, detail::makeRendezvousKey(token.data(), token.size()), config.timeoutSec);
  IdLayout l{};
  l.magic = kIdMagic;
  l.ip = ip;
  l.port = port;
  std::memcpy(l.token, token.data(), token.size());
  UniqueId id;
  std::memcpy(id.bytes.data(), &l, sizeof(l));
  return id;
}

std::shared_ptr<core::Bootstrap> createTcpBootstrap(const UniqueId& id, int rank, int nranks,
                                                    const core::Config& config) {
  checkRankSize(rank, nranks, "createTcpBootstrap");
  IdLayout l{};
  std::memcpy(&l, id.bytes.data(), sizeof(l));
  if (l.magic != kIdMagic) {
    throw Error(ErrorCode::kInvalidArgument,
                "createTcpBootstrap: the UniqueId is not one from getUniqueId() "
                "(wrong magic: uninitialized or corrupted on its way)");
  }
  return joinRendezvous(l.ip, l.port, detail::makeRendezvousKey(l.token, sizeof(l.token)), rank, nranks,
                        config.timeoutSec);
}

std::shared_ptr<core::Bootstrap> createEnvironmentBootstrap(const core::Config& config) {
  const core::Config vars = bootstrapVariables(config);
  const int rank = vars.rank;
  const int nranks = vars.worldSize;
  checkRankSize(rank, nranks, "environment bootstrap (COPRO_RANK, COPRO_WORLD_SIZE)");
  const std::string& root = vars.rootAddr;
  std::uint32_t ip = 0;
  std::uint16_t port = 0;
  resolve(root, ip, port, true, "COPRO_ROOT_ADDR");
  if (port == 0) throw Error(ErrorCode::kInvalidArgument, "COPRO_ROOT_ADDR='" + root + "' needs a port > 0");
  // The secret: COPRO_BOOTSTRAP_TOKEN, or a public one where the user says the network is trusted.
  std::string secret = vars.bootstrapToken;
  if (secret.empty()) {
    if (!config.bootstrapTrusted) {
      throw Error(ErrorCode::kInvalidArgument,
                  "environment bootstrap: COPRO_BOOTSTRAP_TOKEN is not set. Give every rank the same secret (e.g. "
                  "export COPRO_BOOTSTRAP_TOKEN=$(openssl rand -hex 16) where the job is launched), or set "
                  "COPRO_BOOTSTRAP_TRUSTED=1 if no other process can reach COPRO_ROOT_ADDR (docs/bootstrap.md)");
    }
    secret = "copro-trusted-network";
    if (rank == 0) {
      COPRO_LOG(Info, Init,
                "environment bootstrap without a secret (COPRO_BOOTSTRAP_TRUSTED=1): any process that reaches "
                    << root << " can join");
    }
  }
  const RendezvousKey key = detail::makeRendezvousKey(secret.data(), secret.size());
  if (rank == 0) startRoot(ip, port, key, config.timeoutSec);
  return joinRendezvous(ip, port, key, rank, nranks, config.timeoutSec);
}

}  // namespace copro::transport

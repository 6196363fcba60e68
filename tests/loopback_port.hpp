#pragma once
/// A loopback TCP port for the root of a test's rendezvous, picked below the ephemeral range
/// (/proc/sys/net/ipv4/ip_local_port_range). A port that bind(0) hands out lies inside that range, so
/// before the root listens on it, any outgoing connection may take it as its source port, and a rank
/// retrying its connect to it can even connect to itself (TCP simultaneous open): the rank then waits for
/// a root that is itself until the bootstrap timeout. Bootstrap.EnvironmentForm failed that way once under
/// ASan in CI ("timed out waiting for the bootstrap root" on all three ranks); the verbs fault test had seen
/// "Address already in use" with several copies running.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>

namespace copro::testing {

/// Whether a loopback TCP socket can bind `port` (0: any; then `port` becomes the one the kernel chose).
inline bool bindsLoopback(int& port) {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  socklen_t len = sizeof(addr);
  const bool ok = s >= 0 && bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (s >= 0) close(s);
  if (ok) port = ntohs(addr.sin_port);
  return ok;
}

/// A loopback port nobody listens on, between 10000 and the start of the ephemeral range (random, so that
/// tests running side by side rarely pick the same one); an ephemeral one only if that range is too small.
inline int unusedLoopbackPort() {
  int low = 32768;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d", &low) != 1) low = 32768;
    std::fclose(f);
  }
  constexpr int kFirst = 10000;
  std::mt19937 gen(std::random_device{}());
  std::uniform_int_distribution<int> pick(kFirst, std::max(kFirst, low - 1));
  for (int tries = 0; low > kFirst + 100 && tries < 50; ++tries) {
    int port = pick(gen);
    if (bindsLoopback(port)) return port;
  }
  int any = 0;
  return bindsLoopback(any) ? any : 0;
}

}  // namespace copro::testing

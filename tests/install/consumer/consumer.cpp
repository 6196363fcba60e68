// The external C++ consumer of the install test: a 2-rank all-reduce through the installed libcopro (ranks
// as threads), the asynchronous error query, and a bundled topology found through the installed
// libcopro_sim (its share/copro, located relative to the library, not to this program).
#include <cstdio>
#include <thread>
#include <vector>

#include "copro/copro.hpp"
#include "copro/sim/library.hpp"
#include "copro/topologies/topology.hpp"

int main() {
  auto comms = copro::createInproc(2);
  std::vector<std::vector<double>> out(2, std::vector<double>(1000));
  std::vector<copro::Status> status(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::vector<double> in(1000, r + 1.0);
      status[r] =
          comms[r].allReduce(in.data(), out[r].data(), 1000, copro::DataType::kFloat64, copro::ReduceOp::kSum).wait();
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    if (!status[r].ok() || out[r][0] != 3.0 || out[r][999] != 3.0 || !comms[r].asyncError().ok()) {
      std::fprintf(stderr, "rank %d: all-reduce failed: %s\n", r, status[r].message().c_str());
      return 1;
    }
  }
  const copro::topo::Fabric f = copro::topo::loadTopology("h800-node");
  std::printf("consumer_cpp: copro %s (sim %s): 2-rank all-reduce ok; h800-node has %zu GPUs\n", copro::version(),
              copro_sim_version(), f.gpus().size());
  return f.gpus().size() == 8 ? 0 : 1;
}

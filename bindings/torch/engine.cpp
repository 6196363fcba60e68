/// The engine of copro_torch (engine.hpp): communicator creation over torch's Store, the worker thread,
/// and the Job builders that map torch's collectives onto copro calls. Contiguous tensors are passed to
/// copro as they are (no copy); non-contiguous ones go through a contiguous copy that is written back.
/// Data-movement ops (broadcast, gathers, all-to-all, send/recv) move bytes, so every torch dtype works
/// there; reductions take the dtypes copro reduces.
#include "engine.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>

#include "store_bootstrap.hpp"
#if COPRO_TORCH_HAVE_MPI
#include "copro/copro_mpi.hpp"
#endif

namespace copro_torch {

namespace {

using copro::DataType;
constexpr DataType kBytes = DataType::kUint8;

// ---- dtypes and ops ----

std::optional<DataType> coproType(at::ScalarType s) {
  switch (s) {
    case at::kChar:
      return DataType::kInt8;
    case at::kByte:
      return DataType::kUint8;
    case at::kInt:
      return DataType::kInt32;
    case at::kLong:
      return DataType::kInt64;
    case at::kHalf:
      return DataType::kFloat16;
    case at::kBFloat16:
      return DataType::kBfloat16;
    case at::kFloat:
      return DataType::kFloat32;
    case at::kDouble:
      return DataType::kFloat64;
    default:
      return std::nullopt;
  }
}

std::string dtypeName(at::ScalarType s) {
  switch (s) {
    case at::kBool:
      return "torch.bool";
    case at::kShort:
      return "torch.int16";
    case at::kComplexFloat:
      return "torch.complex64";
    case at::kComplexDouble:
      return "torch.complex128";
    case at::kComplexHalf:
      return "torch.complex32";
    default:
      return std::string("torch.") + c10::toString(s);
  }
}

const char* reductionName(Reduction op) {
  switch (op) {
    case Reduction::kSum:
      return "SUM";
    case Reduction::kAvg:
      return "AVG";
    case Reduction::kProduct:
      return "PRODUCT";
    case Reduction::kMin:
      return "MIN";
    case Reduction::kMax:
      return "MAX";
  }
  return "?";
}

copro::ReduceOp coproOp(Reduction op) {
  switch (op) {
    case Reduction::kSum:
      return copro::ReduceOp::kSum;
    case Reduction::kAvg:
      return copro::ReduceOp::kAvg;
    case Reduction::kProduct:
      return copro::ReduceOp::kProd;
    case Reduction::kMin:
      return copro::ReduceOp::kMin;
    case Reduction::kMax:
      return copro::ReduceOp::kMax;
  }
  return copro::ReduceOp::kSum;
}

/// The copro type of a reduction on `t`; throws NotImplementedError saying what to use instead.
DataType reduceType(const at::Tensor& t, Reduction op, const char* name) {
  const at::ScalarType s = t.scalar_type();
  if (s == at::kBool) {
    TORCH_CHECK_NOT_IMPLEMENTED(op == Reduction::kMin || op == Reduction::kMax || op == Reduction::kProduct,
                                "copro_torch ", name, ": ReduceOp.", reductionName(op),
                                " on torch.bool is not supported; use MAX (logical or), MIN or PRODUCT (logical and), "
                                "or convert the tensor to torch.uint8");
    return DataType::kUint8;  // 0/1: min, max and product are the logical ops
  }
  const std::optional<DataType> d = coproType(s);
  TORCH_CHECK_NOT_IMPLEMENTED(d.has_value(), "copro_torch ", name, ": dtype ", dtypeName(s),
                              " is not supported for reductions (supported: torch.int8, uint8, int32, int64, float16, "
                              "bfloat16, float32, float64; bool with MIN/MAX/PRODUCT); convert the tensor, e.g. "
                              ".to(torch.int32) or .to(torch.float32), or use the gloo backend for it");
  return *d;
}

void checkTensor(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), "copro_torch ", name, ": undefined tensor");
  TORCH_CHECK_NOT_IMPLEMENTED(t.device().is_cpu(), "copro_torch ", name, ": ", t.device().str(),
                              " tensors are not supported; copro's torch backend takes CPU tensors (move them "
                              "with .cpu(), or use the nccl backend for CUDA tensors)");
  TORCH_CHECK_NOT_IMPLEMENTED(t.layout() == at::kStrided, "copro_torch ", name,
                              ": sparse tensors are not supported; use a dense tensor (.to_dense())");
}

void checkSameType(const at::Tensor& a, const at::Tensor& b, const char* name) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "copro_torch ", name, ": tensors of different dtypes (",
              dtypeName(a.scalar_type()), " and ", dtypeName(b.scalar_type()), ")");
}

void checkCount(const std::vector<at::Tensor>& list, int expected, const char* name, const char* what) {
  TORCH_CHECK(static_cast<int>(list.size()) == expected, "copro_torch ", name, ": ", what, " has ", list.size(),
              " tensors, expected ", expected, " (one per rank)");
}

// ---- buffers ----

std::uint64_t nbytes(const at::Tensor& t) {
  return static_cast<std::uint64_t>(t.numel()) * t.element_size();
}

/// A contiguous tensor holding `t`'s data: `t` itself when contiguous (no copy).
at::Tensor dense(const at::Tensor& t) {
  return t.is_contiguous() ? t : t.contiguous();
}

/// Copies `result` into `t` unless it is `t`.
void writeBack(const at::Tensor& t, const at::Tensor& result) {
  if (!result.is_same(t)) t.copy_(result);
}

at::Tensor byteBuffer(std::uint64_t bytes) {
  return at::empty({static_cast<std::int64_t>(bytes)}, at::TensorOptions().dtype(at::kByte));
}

std::uint8_t* bytesOf(const at::Tensor& t) {
  return static_cast<std::uint8_t*>(t.data_ptr());
}

/// Copies `src` (any strides) into the packed bytes at `dst`.
void packInto(std::uint8_t* dst, const at::Tensor& src) {
  if (src.is_contiguous()) {
    if (src.numel() > 0) std::memcpy(dst, src.data_ptr(), nbytes(src));
  } else {
    at::from_blob(dst, src.sizes(), src.options()).copy_(src);
  }
}

/// Copies the packed bytes at `src` into `dst` (any strides).
void unpackFrom(const at::Tensor& dst, const std::uint8_t* src) {
  if (dst.is_contiguous()) {
    if (dst.numel() > 0) std::memcpy(dst.data_ptr(), src, nbytes(dst));
  } else {
    dst.copy_(at::from_blob(const_cast<std::uint8_t*>(src), dst.sizes(), dst.options()));
  }
}

/// Waits for `request` and throws a RuntimeError-mapped exception naming the op on failure.
void finish(copro::Request request, const char* name) {
  const copro::Status s = request.wait();
  if (!s.ok()) throw std::runtime_error(std::string("copro_torch ") + name + " failed: " + s.toString());
}

/// Progresses every request (they belong to different communicators) until all finished, then throws
/// on the first failure.
void waitAll(std::vector<copro::Request>& requests, const char* name) {
  for (bool done = false; !done;) {
    done = true;
    for (copro::Request& r : requests) done = r.test() && done;
    if (!done) std::this_thread::yield();
  }
  for (copro::Request& r : requests) finish(std::move(r), name);
}

/// Bytes per index of dimension 0 (the unit of all_to_all's split sizes).
std::uint64_t rowBytes(const at::Tensor& t) {
  std::uint64_t row = t.element_size();
  for (std::int64_t d = 1; d < t.dim(); ++d) row *= static_cast<std::uint64_t>(t.size(d));
  return row;
}

/// Byte counts and displacements of all_to_all_single's splits (equal when `splits` is empty).
void splitBytes(const at::Tensor& t, const std::vector<std::int64_t>& splits, int size, const char* side,
                std::vector<std::uint64_t>& counts, std::vector<std::uint64_t>& displs) {
  TORCH_CHECK(t.dim() > 0, "copro_torch all_to_all_single: the ", side, " tensor needs at least one dimension");
  std::vector<std::int64_t> rows = splits;
  if (rows.empty()) {
    TORCH_CHECK(t.size(0) % size == 0, "copro_torch all_to_all_single: dimension 0 of the ", side, " tensor (",
                t.size(0), ") is not divisible by the world size ", size, "; pass split sizes");
    rows.assign(size, t.size(0) / size);
  }
  TORCH_CHECK(static_cast<int>(rows.size()) == size, "copro_torch all_to_all_single: ", rows.size(), " ", side,
              " split sizes for ", size, " ranks");
  std::int64_t total = 0;
  for (std::int64_t r : rows) total += r;
  TORCH_CHECK(total == t.size(0), "copro_torch all_to_all_single: ", side, " split sizes add up to ", total,
              ", dimension 0 has ", t.size(0));
  counts.clear();
  displs.clear();
  std::uint64_t offset = 0;
  for (std::int64_t r : rows) {
    counts.push_back(static_cast<std::uint64_t>(r) * rowBytes(t));
    displs.push_back(offset);
    offset += counts.back();
  }
}

// ---- transports and creation ----

std::mutex gRegistryMutex;
std::set<Engine*>& liveEngines() {
  static std::set<Engine*> engines;
  return engines;
}
bool gInitializedMpi = false;

/// True when every rank runs on this host (same hostname).
bool oneHost(copro::core::Bootstrap& boot) {
  char mine[256] = {};
  gethostname(mine, sizeof(mine) - 1);
  std::vector<char> all(sizeof(mine) * boot.size());
  boot.allGather(mine, all.data(), sizeof(mine)).throwIfError();
  for (int r = 0; r < boot.size(); ++r) {
    if (std::strncmp(all.data() + r * sizeof(mine), mine, sizeof(mine)) != 0) return false;
  }
  return true;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

#if COPRO_TORCH_HAVE_MPI
/// Initializes MPI when needed and returns the MPI_COMM_WORLD rank of every rank of the group.
std::vector<int> mpiWorldRanks(copro::core::Bootstrap& boot) {
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMI_SIZE") != nullptr ||
                        std::getenv("PMIX_RANK") != nullptr;
  if (!launched) {
    throw std::runtime_error(
        "copro_torch: transport 'mpi' works only when the processes are started by mpirun (no "
        "OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment): launch with `mpirun -np N python3 ...`, "
        "or choose transport 'shm' (one host) or 'ucx'");
  }
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized == 0) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    gInitializedMpi = true;
  }
  int worldRank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &worldRank);
  std::vector<int> ranks(boot.size());
  boot.allGather(&worldRank, ranks.data(), sizeof(int)).throwIfError();
  return ranks;
}

/// An `mpi` communicator over the given MPI_COMM_WORLD ranks (MPI_Comm_create_group: collective over
/// these processes only, as torch's group creation and a pair's first exchange are).
copro::Communicator createMpi(const std::vector<int>& worldRanks, int tag, const copro::Config& config) {
  MPI_Group world = MPI_GROUP_NULL;
  MPI_Group group = MPI_GROUP_NULL;
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  MPI_Group_incl(world, static_cast<int>(worldRanks.size()), worldRanks.data(), &group);
  MPI_Comm_create_group(MPI_COMM_WORLD, group, tag, &comm);
  copro::Communicator result = copro::createFromMpi(comm, "mpi", config);  // duplicates comm
  MPI_Comm_free(&comm);
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  return result;
}
#endif

}  // namespace

std::vector<std::string> availableTransports() {
  copro::registerBuiltinBackends();
  std::vector<std::string> names;
  for (const auto& [name, description] : copro::core::ExecutorRegistry::instance().list()) {
    if (name == "inproc") continue;  // threads of one process: not a torch backend
#if !COPRO_TORCH_HAVE_MPI
    if (name == "mpi") continue;
#endif
    names.push_back(name);
  }
  return names;
}

/// The group's communicator as emptyShared's tensors see it: their deleters (any thread, any time)
/// release memory through it while the group lives, and do nothing once it is gone (the shm mapping
/// then stays valid until the process exits, docs/shm.md).
struct Engine::SharedMemory {
  std::mutex mutex;
  copro::Communicator* comm = nullptr;

  void release(void* ptr) {
    std::lock_guard<std::mutex> lock(mutex);
    if (comm != nullptr) comm->deallocate(ptr);
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex);
    comm = nullptr;
  }
};

Engine::Engine(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, const std::string& transport,
               std::chrono::milliseconds timeout)
    : rank_(rank),
      size_(size),
      config_(copro::Config::fromEnvironment()),
      transport_(transport.empty() ? config_.torchTransport : transport),
      boot_(std::make_shared<StoreBootstrap>(store, "copro/", rank, size)) {
  const std::vector<std::string> known = availableTransports();
  if (transport_ == "auto") {
    const bool ucx = std::find(known.begin(), known.end(), "ucx") != known.end();
    transport_ = oneHost(*boot_) ? "shm" : (ucx ? "ucx" : "mpi");
  }
  if (std::find(known.begin(), known.end(), transport_) == known.end()) {
    throw std::runtime_error("copro_torch: unknown transport '" + transport_ + "'; this build offers: auto, " +
                             joined(known) + " (copro_torch.set_transport or COPRO_TORCH_TRANSPORT)");
  }
  if (!config_.isSet("COPRO_TIMEOUT") && timeout.count() > 0) config_.timeoutSec = timeout.count() / 1000.0;
#if COPRO_TORCH_HAVE_MPI
  if (transport_ == "mpi") mpiWorldRanks_ = mpiWorldRanks(*boot_);
#endif
  comm_ = create(boot_, mpiWorldRanks_);
  shared_ = std::make_shared<SharedMemory>();
  shared_->comm = &comm_;
  worker_ = std::thread([this] { workerLoop(); });
  std::lock_guard<std::mutex> lock(gRegistryMutex);
  liveEngines().insert(this);
}

copro::Communicator Engine::create(const std::shared_ptr<StoreBootstrap>& boot, const std::vector<int>& mpiRanks) {
  try {
#if COPRO_TORCH_HAVE_MPI
    if (transport_ == "mpi") {
      const int tag = 1 + (mpiRanks.size() == 2 ? (mpiRanks[0] * size_ + mpiRanks[1]) % 30000 : 0);
      return createMpi(mpiRanks, tag, config_);
    }
#endif
    static_cast<void>(mpiRanks);
    return copro::createCommunicator(transport_, boot, config_);
  } catch (const copro::Error& e) {
    throw std::runtime_error("copro_torch: creating a '" + transport_ + "' communicator of " +
                             std::to_string(boot->size()) + " ranks on rank " + std::to_string(rank_) +
                             " failed: " + e.what());
  }
}

copro::Communicator& Engine::pairComm(int peer) {
  auto it = pairs_.find(peer);
  if (it != pairs_.end()) return it->second;
  std::vector<int> mpiRanks;
  if (!mpiWorldRanks_.empty()) {
    mpiRanks = {mpiWorldRanks_[std::min(rank_, peer)], mpiWorldRanks_[std::max(rank_, peer)]};
  }
  return pairs_.emplace(peer, create(boot_->pair(peer), mpiRanks)).first->second;
}

Engine::~Engine() {
  shutdown();
  std::lock_guard<std::mutex> lock(gRegistryMutex);
  liveEngines().erase(this);
}

void Engine::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_ && !worker_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  shared_->close();
  pairs_.clear();
  comm_ = copro::Communicator();  // releases shared memory and endpoints now
}

void Engine::submit(Job job, DoneCallback done) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    TORCH_CHECK(!stop_, "copro_torch: the process group was shut down (destroy_process_group or interpreter exit)");
    lastSubmit_ = Clock::now();
    queue_.push_back({std::move(job), std::move(done), lastSubmit_});
    wake = sleeping_;  // a ticking worker finds the Job on its next tick: no wake-up per call
  }
  if (wake) cv_.notify_one();
}

void Engine::expedite() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty() || urgent_) return;
    urgent_ = true;
  }
  cv_.notify_one();
}

void Engine::workerLoop() {
  const c10::AutoGradMode noGrad(false);  // results are written in place, as other backends do
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (queue_.empty()) {
      urgent_ = false;
      if (stop_) return;  // stopped and drained
      waitForWork(lock);
      continue;
    }
    // A Job younger than kHandOff is left to the thread that will wait for it (a synchronous call runs
    // inline, with no hand-off); an observed (expedite) or older one is the worker's.
    const Clock::time_point due = queue_.front().submitted + kHandOff;
    if (!stop_ && !urgent_ && Clock::now() < due) {
      cv_.wait_until(lock, due);
      continue;
    }
    lock.unlock();
    bool ran = false;
    {
      const std::unique_lock<std::mutex> drive(driving_, std::try_to_lock);
      if (drive.owns_lock()) ran = runNext();
    }
    lock.lock();
    if (!ran && !stop_) cv_.wait_for(lock, kTick);  // a waiter is running Jobs: look again later
    if (!ran && stop_) {
      lock.unlock();
      const std::lock_guard<std::mutex> drive(driving_);  // shutting down: wait for the waiter, then drain
      lock.lock();
    }
  }
}

void Engine::waitForWork(std::unique_lock<std::mutex>& lock) {
  if (Clock::now() - lastSubmit_ < kHot) {
    cv_.wait_for(lock, kTick);  // calls are coming: tick, so that submit needs no wake-up
    return;
  }
  sleeping_ = true;  // idle: sleep until submit, expedite or shutdown notifies
  cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
  sleeping_ = false;
}

bool Engine::runNext() {
  Task task;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) return false;
    task = std::move(queue_.front());
    queue_.pop_front();
  }
  std::exception_ptr error;
  try {
    task.job.run(comm_);
  } catch (...) {
    error = std::current_exception();
  }
  task.done(error);
  return true;
}

void Engine::runQueuedUntil(const std::function<bool()>& done) {
  std::unique_lock<std::mutex> drive(driving_, std::try_to_lock);
  if (!drive.owns_lock()) {
    expedite();  // the worker is running Jobs: it goes on with ours at once; Work::wait blocks as usual
    return;
  }
  const c10::AutoGradMode noGrad(false);
  while (!done() && runNext()) {
  }
}

void shutdownAll() {
  std::vector<Engine*> engines;
  {
    std::lock_guard<std::mutex> lock(gRegistryMutex);
    engines.assign(liveEngines().begin(), liveEngines().end());
  }
  for (Engine* e : engines) e->shutdown();
#if COPRO_TORCH_HAVE_MPI
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (gInitializedMpi && finalized == 0) MPI_Finalize();
#endif
}

// ---- tensors in shared memory ----

at::Tensor Engine::emptyShared(std::int64_t bytes) {
  constexpr std::int64_t kMaxBytes = std::int64_t{1} << 40;  // 1 TiB: beyond any host's memory
  TORCH_CHECK(bytes >= 0 && bytes <= kMaxBytes, "copro_torch.empty: ", bytes,
              " bytes is outside 0 .. 1 TiB; allocate less");
  const auto options = at::TensorOptions().dtype(at::kByte).device(at::kCPU);
  if (transport_ != "shm") return at::empty({bytes}, options);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    TORCH_CHECK(!stop_, "copro_torch.empty: the process group has been shut down");
  }
  void* ptr = nullptr;
  try {
    ptr = comm_.allocate(static_cast<std::size_t>(std::max<std::int64_t>(bytes, 1)));
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "copro_torch.empty: cannot allocate ", bytes, " bytes of shared memory: ", e.what());
  }
  TORCH_CHECK(ptr != nullptr, "copro_torch.empty: cannot allocate ", bytes, " bytes of shared memory");
  std::shared_ptr<SharedMemory> owner = shared_;
  return at::from_blob(
      ptr, {bytes}, [owner](void* p) { owner->release(p); }, options);
}

// ---- Job builders ----

Job Engine::allReduce(const at::Tensor& tensor, Reduction op) const {
  checkTensor(tensor, "all_reduce");
  const DataType type = reduceType(tensor, op, "all_reduce");
  return {{tensor}, [tensor, type, op](copro::Communicator& c) {
            const at::Tensor d = dense(tensor);
            const auto n = static_cast<std::uint64_t>(d.numel());
            finish(c.allReduce(d.data_ptr(), d.data_ptr(), n, type, coproOp(op)), "all_reduce");
            writeBack(tensor, d);
          }};
}

Job Engine::allReduceCoalesced(const std::vector<at::Tensor>& tensors, Reduction op) const {
  TORCH_CHECK(!tensors.empty(), "copro_torch all_reduce_coalesced: no tensors");
  for (const at::Tensor& t : tensors) {
    checkTensor(t, "all_reduce_coalesced");
    checkSameType(t, tensors.front(), "all_reduce_coalesced");
  }
  const DataType type = reduceType(tensors.front(), op, "all_reduce_coalesced");
  return {tensors, [tensors, type, op](copro::Communicator& c) {
            std::uint64_t total = 0;
            for (const at::Tensor& t : tensors) total += nbytes(t);
            const at::Tensor flat = byteBuffer(total);
            std::uint64_t offset = 0;
            for (const at::Tensor& t : tensors) offset += (packInto(bytesOf(flat) + offset, t), nbytes(t));
            const std::uint64_t n = total / tensors.front().element_size();
            finish(c.allReduce(flat.data_ptr(), flat.data_ptr(), n, type, coproOp(op)), "all_reduce_coalesced");
            offset = 0;
            for (const at::Tensor& t : tensors) offset += (unpackFrom(t, bytesOf(flat) + offset), nbytes(t));
          }};
}

Job Engine::broadcast(const at::Tensor& tensor, int root) const {
  checkTensor(tensor, "broadcast");
  return {{tensor}, [tensor, root](copro::Communicator& c) {
            const at::Tensor d = dense(tensor);
            finish(c.broadcast(d.data_ptr(), d.data_ptr(), nbytes(d), kBytes, root), "broadcast");
            writeBack(tensor, d);
          }};
}

Job Engine::reduce(const at::Tensor& tensor, Reduction op, int root) const {
  checkTensor(tensor, "reduce");
  const DataType type = reduceType(tensor, op, "reduce");
  return {{tensor}, [tensor, type, op, root](copro::Communicator& c) {
            const at::Tensor d = dense(tensor);
            const auto n = static_cast<std::uint64_t>(d.numel());
            finish(c.reduce(d.data_ptr(), d.data_ptr(), n, type, coproOp(op), root), "reduce");
            writeBack(tensor, d);
          }};
}

Job Engine::allGather(const std::vector<at::Tensor>& outputs, const at::Tensor& input) const {
  checkTensor(input, "all_gather");
  checkCount(outputs, size_, "all_gather", "the output list");
  for (const at::Tensor& o : outputs) {
    checkTensor(o, "all_gather");
    checkSameType(o, input, "all_gather");
    TORCH_CHECK(o.numel() == input.numel(), "copro_torch all_gather: an output has ", o.numel(),
                " elements, the input ", input.numel());
  }
  const int p = size_;
  return {outputs, [outputs, input, p](copro::Communicator& c) {
            const at::Tensor in = dense(input);
            const std::uint64_t nb = nbytes(in);
            const at::Tensor flat = byteBuffer(nb * p);
            finish(c.allGather(in.data_ptr(), flat.data_ptr(), nb, kBytes), "all_gather");
            for (int r = 0; r < p; ++r) unpackFrom(outputs[r], bytesOf(flat) + r * nb);
          }};
}

Job Engine::allGatherBase(const at::Tensor& output, const at::Tensor& input) const {
  checkTensor(input, "all_gather_into_tensor");
  checkTensor(output, "all_gather_into_tensor");
  checkSameType(output, input, "all_gather_into_tensor");
  TORCH_CHECK(output.numel() == input.numel() * size_, "copro_torch all_gather_into_tensor: the output has ",
              output.numel(), " elements, expected world size x input = ", input.numel() * size_);
  return {{output}, [output, input](copro::Communicator& c) {
            const at::Tensor in = dense(input);
            const at::Tensor out = dense(output);
            finish(c.allGather(in.data_ptr(), out.data_ptr(), nbytes(in), kBytes), "all_gather_into_tensor");
            writeBack(output, out);
          }};
}

Job Engine::allGatherCoalesced(const std::vector<std::vector<at::Tensor>>& outputs,
                               const std::vector<at::Tensor>& inputs) const {
  TORCH_CHECK(static_cast<int>(outputs.size()) == size_, "copro_torch all_gather_coalesced: ", outputs.size(),
              " output lists, expected one per rank (", size_, ")");
  for (const std::vector<at::Tensor>& list : outputs) {
    TORCH_CHECK(list.size() == inputs.size(), "copro_torch all_gather_coalesced: an output list has ", list.size(),
                " tensors, the input list ", inputs.size());
    for (std::size_t j = 0; j < list.size(); ++j) {
      checkTensor(list[j], "all_gather_coalesced");
      checkSameType(list[j], inputs[j], "all_gather_coalesced");
      TORCH_CHECK(list[j].numel() == inputs[j].numel(), "copro_torch all_gather_coalesced: output size mismatch");
    }
  }
  std::vector<at::Tensor> flatOutputs;
  for (const auto& list : outputs) flatOutputs.insert(flatOutputs.end(), list.begin(), list.end());
  const int p = size_;
  return {flatOutputs, [outputs, inputs, p](copro::Communicator& c) {
            std::uint64_t block = 0;
            for (const at::Tensor& t : inputs) block += nbytes(t);
            const at::Tensor send = byteBuffer(block);
            const at::Tensor flat = byteBuffer(block * p);
            std::uint64_t offset = 0;
            for (const at::Tensor& t : inputs) offset += (packInto(bytesOf(send) + offset, t), nbytes(t));
            finish(c.allGather(send.data_ptr(), flat.data_ptr(), block, kBytes), "all_gather_coalesced");
            for (int r = 0; r < p; ++r) {
              offset = r * block;
              for (const at::Tensor& t : outputs[r]) offset += (unpackFrom(t, bytesOf(flat) + offset), nbytes(t));
            }
          }};
}

Job Engine::reduceScatter(const at::Tensor& output, const std::vector<at::Tensor>& inputs, Reduction op) const {
  checkTensor(output, "reduce_scatter");
  checkCount(inputs, size_, "reduce_scatter", "the input list");
  for (const at::Tensor& t : inputs) {
    checkTensor(t, "reduce_scatter");
    checkSameType(t, output, "reduce_scatter");
    TORCH_CHECK(t.numel() == output.numel(), "copro_torch reduce_scatter: an input has ", t.numel(),
                " elements, the output ", output.numel());
  }
  const DataType type = reduceType(output, op, "reduce_scatter");
  const int p = size_;
  return {{output}, [output, inputs, type, op, p](copro::Communicator& c) {
            const std::uint64_t nb = nbytes(output);
            const at::Tensor flat = byteBuffer(nb * p);
            for (int r = 0; r < p; ++r) packInto(bytesOf(flat) + r * nb, inputs[r]);
            const at::Tensor out = dense(output);
            const auto n = static_cast<std::uint64_t>(out.numel());
            finish(c.reduceScatter(flat.data_ptr(), out.data_ptr(), n, type, coproOp(op)), "reduce_scatter");
            writeBack(output, out);
          }};
}

Job Engine::reduceScatterBase(const at::Tensor& output, const at::Tensor& input, Reduction op) const {
  checkTensor(output, "reduce_scatter_tensor");
  checkTensor(input, "reduce_scatter_tensor");
  checkSameType(output, input, "reduce_scatter_tensor");
  TORCH_CHECK(input.numel() == output.numel() * size_, "copro_torch reduce_scatter_tensor: the input has ",
              input.numel(), " elements, expected world size x output = ", output.numel() * size_);
  const DataType type = reduceType(output, op, "reduce_scatter_tensor");
  return {{output}, [output, input, type, op](copro::Communicator& c) {
            const at::Tensor in = dense(input);
            const at::Tensor out = dense(output);
            const auto n = static_cast<std::uint64_t>(out.numel());
            finish(c.reduceScatter(in.data_ptr(), out.data_ptr(), n, type, coproOp(op)), "reduce_scatter_tensor");
            writeBack(output, out);
          }};
}

Job Engine::allToAllBase(const at::Tensor& output, const at::Tensor& input, const std::vector<std::int64_t>& outSplits,
                         const std::vector<std::int64_t>& inSplits) const {
  checkTensor(output, "all_to_all_single");
  checkTensor(input, "all_to_all_single");
  checkSameType(output, input, "all_to_all_single");
  std::vector<std::uint64_t> sendCounts, sendDispls, recvCounts, recvDispls;
  splitBytes(input, inSplits, size_, "input", sendCounts, sendDispls);
  splitBytes(output, outSplits, size_, "output", recvCounts, recvDispls);
  const bool even = inSplits.empty() && outSplits.empty();
  return {{output}, [=](copro::Communicator& c) {
            at::Tensor in = dense(input);
            const at::Tensor out = dense(output);
            if (in.data_ptr() == out.data_ptr() && in.numel() > 0)
              in = in.clone();  // copro's v-variant is out of place
            if (even) {
              finish(c.allToAll(in.data_ptr(), out.data_ptr(), sendCounts.front(), kBytes), "all_to_all_single");
            } else {
              finish(c.allToAllV(in.data_ptr(), sendCounts, sendDispls, out.data_ptr(), recvCounts, recvDispls, kBytes),
                     "all_to_all_single");
            }
            writeBack(output, out);
          }};
}

Job Engine::allToAll(const std::vector<at::Tensor>& outputs, const std::vector<at::Tensor>& inputs) const {
  checkCount(inputs, size_, "all_to_all", "the input list");
  checkCount(outputs, size_, "all_to_all", "the output list");
  for (int r = 0; r < size_; ++r) {
    checkTensor(inputs[r], "all_to_all");
    checkTensor(outputs[r], "all_to_all");
    checkSameType(outputs[r], inputs[r], "all_to_all");
  }
  return {outputs, [outputs, inputs](copro::Communicator& c) {
            std::vector<std::uint64_t> sendCounts, sendDispls, recvCounts, recvDispls;
            std::uint64_t sendTotal = 0, recvTotal = 0;
            for (std::size_t r = 0; r < inputs.size(); ++r) {
              sendDispls.push_back(sendTotal);
              sendCounts.push_back(nbytes(inputs[r]));
              sendTotal += sendCounts.back();
              recvDispls.push_back(recvTotal);
              recvCounts.push_back(nbytes(outputs[r]));
              recvTotal += recvCounts.back();
            }
            const at::Tensor send = byteBuffer(sendTotal);
            const at::Tensor recv = byteBuffer(recvTotal);
            for (std::size_t r = 0; r < inputs.size(); ++r) packInto(bytesOf(send) + sendDispls[r], inputs[r]);
            finish(
                c.allToAllV(send.data_ptr(), sendCounts, sendDispls, recv.data_ptr(), recvCounts, recvDispls, kBytes),
                "all_to_all");
            for (std::size_t r = 0; r < outputs.size(); ++r) unpackFrom(outputs[r], bytesOf(recv) + recvDispls[r]);
          }};
}

Job Engine::gather(const std::vector<at::Tensor>& outputs, const at::Tensor& input, int root) const {
  checkTensor(input, "gather");
  if (rank_ == root) {
    checkCount(outputs, size_, "gather", "the output list on the root");
    for (const at::Tensor& o : outputs) {
      checkTensor(o, "gather");
      checkSameType(o, input, "gather");
      TORCH_CHECK(o.numel() == input.numel(), "copro_torch gather: output size mismatch");
    }
  }
  const int p = size_;
  const bool isRoot = rank_ == root;
  return {outputs, [outputs, input, root, p, isRoot](copro::Communicator& c) {
            const at::Tensor in = dense(input);
            const std::uint64_t nb = nbytes(in);
            const at::Tensor flat = byteBuffer(nb * p);
            finish(c.gather(in.data_ptr(), flat.data_ptr(), nb, kBytes, root), "gather");
            if (isRoot) {
              for (int r = 0; r < p; ++r) unpackFrom(outputs[r], bytesOf(flat) + r * nb);
            }
          }};
}

Job Engine::scatter(const at::Tensor& output, const std::vector<at::Tensor>& inputs, int root) const {
  checkTensor(output, "scatter");
  if (rank_ == root) {
    checkCount(inputs, size_, "scatter", "the input list on the root");
    for (const at::Tensor& t : inputs) {
      checkTensor(t, "scatter");
      checkSameType(t, output, "scatter");
      TORCH_CHECK(t.numel() == output.numel(), "copro_torch scatter: input size mismatch");
    }
  }
  const int p = size_;
  const bool isRoot = rank_ == root;
  return {{output}, [output, inputs, root, p, isRoot](copro::Communicator& c) {
            const std::uint64_t nb = nbytes(output);
            const at::Tensor flat = byteBuffer(nb * p);
            if (isRoot) {
              for (int r = 0; r < p; ++r) packInto(bytesOf(flat) + r * nb, inputs[r]);
            }
            const at::Tensor out = dense(output);
            finish(c.scatter(flat.data_ptr(), out.data_ptr(), nb, kBytes, root), "scatter");
            writeBack(output, out);
          }};
}

Job Engine::barrier() const {
  return {{}, [](copro::Communicator& c) { finish(c.barrier(), "barrier"); }};
}

void Engine::checkP2P(const P2P& op, const char* name) const {
  checkTensor(op.tensor, name);
  TORCH_CHECK(op.peer >= 0 && op.peer < size_ && op.peer != rank_, "copro_torch ", name, ": peer ", op.peer,
              " is not another rank of this group (size ", size_, ", this rank ", rank_, ")");
}

Job Engine::p2p(const std::vector<P2P>& ops) {
  std::vector<at::Tensor> outputs;
  for (const P2P& op : ops) outputs.push_back(op.tensor);
  return {outputs, [this, ops](copro::Communicator& /*world*/) {
            std::vector<at::Tensor> buffers;
            std::map<int, std::vector<std::size_t>> byPeer;  // peer -> its ops, in order
            for (std::size_t i = 0; i < ops.size(); ++i) {
              buffers.push_back(dense(ops[i].tensor));
              byPeer[ops[i].peer].push_back(i);
            }
            // Pair communicators are created in increasing peer order on every rank: no cycle of waits.
            std::vector<copro::Request> requests;
            for (const auto& [peer, indices] : byPeer) {
              copro::Communicator& c = pairComm(peer);
              const int other = 1 - c.rank();
              c.groupStart();
              for (std::size_t i : indices) {
                const at::Tensor& b = buffers[i];
                if (ops[i].isSend) {
                  static_cast<void>(c.send(b.data_ptr(), nbytes(b), kBytes, other));
                } else {
                  static_cast<void>(c.recv(b.data_ptr(), nbytes(b), kBytes, other));
                }
              }
              requests.push_back(c.groupEnd());
            }
            waitAll(requests, ops.size() == 1 ? (ops[0].isSend ? "send" : "recv") : "batch_isend_irecv");
            for (std::size_t i = 0; i < ops.size(); ++i) {
              if (!ops[i].isSend) writeBack(ops[i].tensor, buffers[i]);
            }
          }};
}

}  // namespace copro_torch

#pragma once
/// The `mpi` backend and the MPI bootstrap (docs/mpi.md). Available when the build found MPI
/// (COPRO_HAVE_MPI); including this header needs <mpi.h>.
///
/// The backend runs Programs with two-sided MPI: a put becomes a small header message plus the data,
/// which the target's progress engine (driven by the target's own wait()/test()) places and then signals.
/// Under mpirun the death of a rank ends the whole job.
// copro uses MPI's C API only; keep Open MPI's and MPICH's deprecated C++ bindings out.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <cstdint>
#include <memory>

#include "copro/core/bootstrap.hpp"
#include "copro/core/executor.hpp"

namespace copro::transport {

/// A Bootstrap over `comm` (duplicated, so it never interferes with the caller's traffic; freed with the
/// bootstrap). MPI must be initialized; the bootstrap must be destroyed before MPI_Finalize. Throws
/// Error(kInvalidArgument) for MPI_COMM_NULL or when MPI is not initialized.
std::shared_ptr<core::Bootstrap> createMpiBootstrap(MPI_Comm comm);

/// The MPI communicator of a bootstrap made by createMpiBootstrap (or of a split of one), else
/// MPI_COMM_NULL.
MPI_Comm mpiCommOf(const core::Bootstrap& bootstrap);

/// This process's executor of the `mpi` backend. `options.bootstrap` must come from createMpiBootstrap
/// (its communicator is duplicated for the data path). Throws Error(kInvalidArgument) otherwise.
std::unique_ptr<core::Executor> createMpiExecutor(const core::ExecutorOptions& options);

/// How the data messages of this process's incoming `mpi` puts met their receives, since the start (or
/// the last reset), over every `mpi` executor (docs/mpi.md, "Pre-posted receives"). For tests and logs.
struct MpiReceiveCounters {
  std::uint64_t preposted = 0;       ///< posted when the call was entered, before the put's header arrived
  std::uint64_t postedAtHeader = 0;  ///< posted when the header arrived (the data was likely unexpected)
  std::uint64_t foundWaiting = 0;    ///< a planned data message already waited unmatched when the call was entered
};
MpiReceiveCounters mpiReceiveCounters();
void resetMpiReceiveCounters();

/// Whether `mpi` executors created from now on pre-post the receives of the puts their Programs plan
/// (default true). A communicator pre-posts only when every rank enabled it at creation. For measurements.
void setMpiPrepostedReceives(bool enabled);

/// Adds the backend to a registry under the name "mpi".
void registerMpi(core::ExecutorRegistry& registry);

}  // namespace copro::transport

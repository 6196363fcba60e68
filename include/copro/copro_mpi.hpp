#pragma once
/// Communicators over MPI (needs <mpi.h>; available when copro was built with MPI, COPRO_HAVE_MPI).
///
///   MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
///   {
///     copro::Communicator comm = copro::createFromMpi(MPI_COMM_WORLD);          // the `mpi` backend
///     copro::Communicator fast = copro::createFromMpi(MPI_COMM_WORLD, "ucx");   // UCX, bootstrapped by MPI
///     comm.allReduce(in, out, n, copro::DataType::kFloat32, copro::ReduceOp::kSum).wait().throwIfError();
///   }  // destroy communicators before MPI_Finalize
///   MPI_Finalize();
// copro uses MPI's C API only; keep Open MPI's and MPICH's deprecated C++ bindings out.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <string>

#include "copro/copro.hpp"

namespace copro {

/// This process's rank of a communicator over the processes of `comm` (collective over `comm`; the
/// communicator is duplicated). `backend` is "mpi" (two-sided MPI) or any other multi-process backend,
/// which then uses MPI only to bootstrap (exchange addresses and keys). Threads: MPI must provide at least
/// MPI_THREAD_SERIALIZED when different threads drive the communicator. Throws Error naming the problem
/// (MPI not initialized, unknown backend).
Communicator createFromMpi(MPI_Comm comm, const std::string& backend = "mpi",
                           const Config& config = Config::fromEnvironment());

}  // namespace copro

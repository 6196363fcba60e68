#pragma once
/// Internals shared by the MPI bootstrap and the `mpi` backend.
// copro uses MPI's C API only; keep Open MPI's and MPICH's deprecated C++ bindings out.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <string>

#include "copro/core/status.hpp"

namespace copro::transport::mpi {

/// "MPI_Isend: <MPI's error string>" as a Status (ok for MPI_SUCCESS).
core::Status mpiStatus(int rc, const char* what);
/// Throws Error(kSystemError) unless rc is MPI_SUCCESS.
void mpiCheck(int rc, const char* what);
/// Duplicates `comm` with MPI_ERRORS_RETURN, so that MPI errors come back as codes.
MPI_Comm dupComm(MPI_Comm comm);

}  // namespace copro::transport::mpi

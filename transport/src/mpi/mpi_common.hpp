#pragma once
/// Internals shared by the MPI bootstrap and the `mpi` backend.
#include "copro/transport/mpi.hpp"  // <mpi.h>, C API only

#include <string>

#include "copro/core/status.hpp"

namespace copro::transport::mpi {

/// "MPI_Isend: <MPI's error string>" as a Status (ok for MPI_SUCCESS).
core::Status mpiStatus(int rc, const char* what);
/// Throws Error(kSystemError) unless rc is MPI_SUCCESS.
void mpiCheck(int rc, const char* what);
/// Duplicates `comm` with MPI_ERRORS_RETURN, so that MPI errors come back as codes.
MPI_Comm dupComm(MPI_Comm comm);

/// setMpiPrepostedReceives' setting (receive_counters.cpp).
bool prepostedReceivesEnabled();
/// Counts one incoming put's data receive into mpiReceiveCounters().
enum class ReceiveKind { kPreposted, kPostedAtHeader, kFoundWaiting };
void countReceive(ReceiveKind kind);

}  // namespace copro::transport::mpi

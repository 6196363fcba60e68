"""copro_torch: copro as a torch.distributed backend.

Importing this package registers the backend "copro" with torch.distributed; then

    import copro_torch
    torch.distributed.init_process_group("copro", rank=rank, world_size=world_size, init_method=...)

runs torch's collectives (all_reduce, broadcast, all_gather, reduce_scatter, all_to_all, send/recv, ...)
on CPU tensors over copro. The backend bootstraps through the Store torch hands it (no extra
environment variables). The transport is chosen per process group when it is created:

    copro_torch.set_transport("shm")   # or "ucx", "mpi" (only under mpirun); default "auto"

or with COPRO_TORCH_TRANSPORT; "auto" takes shm when every rank runs on this host, else ucx.
See docs/torch.md for the op/dtype table and the options.
"""
import atexit

import torch  # noqa: F401  (loads libtorch before the extension)
import torch.distributed as dist

from . import _C

__all__ = ["BACKEND", "set_transport", "get_transport", "transports", "transport_of", "empty"]

# The name to pass to torch.distributed.init_process_group / new_group.
BACKEND = "copro"

# None: not set here; the extension then takes COPRO_TORCH_TRANSPORT through copro's Config (default auto).
_transport = None


def transports():
    """The transports this build offers (besides "auto")."""
    return list(_C.transports())


def set_transport(name):
    """Transport for process groups created from now on: "auto", "shm", "ucx", "mpi", ..."""
    global _transport
    if name != "auto" and name not in transports():
        raise ValueError(f"copro_torch: unknown transport {name!r}; this build offers: auto, "
                         + ", ".join(transports()))
    _transport = name


def get_transport():
    """The transport new process groups will use ("auto" unless set here or by COPRO_TORCH_TRANSPORT)."""
    return _transport if _transport is not None else _C.configured_transport()


def transport_of(group=None):
    """The transport a copro process group actually runs on (default: the default group)."""
    if group is None:
        group = dist.distributed_c10d._get_default_group()
    return _C.transport_of(group)


def empty(*size, dtype=torch.float32, group=None):
    """A CPU tensor (uninitialized, like torch.empty) in memory every rank of a copro group maps.

    On the shm transport, collectives on such tensors (and on views of them) read and write the peers'
    memory directly; a tensor from torch.empty is private memory that peers reach through Cross Memory
    Attach, one extra copy per access (docs/torch.md, "Zero-copy tensors"). Use it for buffers that are
    communicated often (gradient buckets, all-to-all buffers). On other transports it is torch.empty.
    The memory returns to copro when the tensor is freed; one that outlives the group stays mapped until
    the process exits. `group` defaults to the default group, which must be a copro group.
    """
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = tuple(size[0])
    if group is None:
        group = dist.distributed_c10d._get_default_group()
    shape = torch.Size(size)
    elem = torch.tensor([], dtype=dtype).element_size()
    raw = _C.empty_shared(group, shape.numel() * elem)
    return raw.view(dtype).view(shape)


def _create_process_group(store, rank, world_size, timeout):
    # torch calls this (Backend.register_backend) with the group's prefixed Store.
    return _C.create_process_group(store, rank, world_size, timeout, _transport or "")


if BACKEND.upper() not in dist.Backend._plugins:
    dist.Backend.register_backend(BACKEND, _create_process_group)

# Release shared memory, endpoints and MPI before the interpreter goes away.
atexit.register(_C.shutdown)

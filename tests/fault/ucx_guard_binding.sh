#!/bin/sh
# Checks that UCX binds to copro's stand-ins for ucp_rma_sw_send_cmpl and ucs_socket_send_nb (the guards
# that keep UCX 1.13 from aborting the process when a peer fails, docs/ucx.md "Failures") when copro is
# libcopro.so: linked by a program (ARG 1, a program linked to libcopro.so) and loaded with dlopen as
# Python's ctypes and the torch binding do (ARG 2, the path of libcopro.so). The dynamic loader's binding
# trace (LD_DEBUG=bindings, every symbol bound at load with LD_BIND_NOW=1) must show libucp and libuct
# bound to libcopro.so for both symbols, in both cases.
set -u
prog=$1
lib=$2
status=0
check() { # $1: what, $2: the loader's trace
  for sym in ucp_rma_sw_send_cmpl ucs_socket_send_nb; do
    if printf '%s\n' "$2" | grep -E "binding file [^ ]*libuc[pt]\.so[^ ]* \[0\] to [^ ]*libcopro\.so[^ ]* \[0\]: normal symbol \`$sym'" >/dev/null; then
      echo "ok: $1: UCX binds $sym to libcopro.so"
    else
      echo "FAIL: $1: UCX does not bind $sym to libcopro.so (UCX 1.13 may abort the process when a peer fails)"
      status=1
    fi
  done
}
check "linked program" "$(LD_BIND_NOW=1 LD_DEBUG=bindings "$prog" 2>&1 >/dev/null)"
if command -v python3 >/dev/null; then
  check "dlopen (ctypes)" "$(LD_BIND_NOW=1 LD_DEBUG=bindings python3 -c "import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$lib" 2>&1)"
else
  echo "skip: dlopen case (no python3)"
fi
exit $status

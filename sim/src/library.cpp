// libcopro_sim's own entry point: the version of the simulator library, for programs that load it at run
// time (sim/include/copro/sim/library.hpp).
#include "copro/sim/library.hpp"

extern "C" const char* copro_sim_version(void) {
  return COPRO_VERSION;
}

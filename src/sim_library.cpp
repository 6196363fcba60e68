// libcopro_sim's own entry point: the version of the simulator library (the rest of it is the simulator and
// topology code folded in from copro_sim and copro_topologies, see src/CMakeLists.txt).
#include "copro/sim/library.hpp"

extern "C" const char* copro_sim_version(void) {
  return COPRO_VERSION;
}

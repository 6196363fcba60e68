# The bundled data (topology and workload files) in the build tree's share/copro, where the libraries and
# tools look for it at run time (core/data_dir.hpp) as an installed copy looks in <prefix>/share/copro.
# Copied at build time, so an edited file reaches the build tree on the next build.
file(GLOB _copro_topology_yaml CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/topologies/*.yaml)
file(GLOB _copro_workload_yaml CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/workloads/*.yaml)
set(COPRO_BUILD_DATA_DIR ${PROJECT_BINARY_DIR}/share/copro)
add_custom_command(
  OUTPUT ${COPRO_BUILD_DATA_DIR}/.stamp
  COMMAND ${CMAKE_COMMAND} -E make_directory ${COPRO_BUILD_DATA_DIR}/topologies ${COPRO_BUILD_DATA_DIR}/workloads
  COMMAND ${CMAKE_COMMAND} -E copy_if_different ${_copro_topology_yaml} ${COPRO_BUILD_DATA_DIR}/topologies
  COMMAND ${CMAKE_COMMAND} -E copy_if_different ${_copro_workload_yaml} ${COPRO_BUILD_DATA_DIR}/workloads
  COMMAND ${CMAKE_COMMAND} -E touch ${COPRO_BUILD_DATA_DIR}/.stamp
  DEPENDS ${_copro_topology_yaml} ${_copro_workload_yaml}
  COMMENT "Copying the bundled topologies and workloads to share/copro")
add_custom_target(copro_data ALL DEPENDS ${COPRO_BUILD_DATA_DIR}/.stamp)
# Building any part of copro (even one tool: --target copro-sim) brings the data along.
add_dependencies(copro_core copro_data)

# `cmake --install`: libraries, public headers (one include/copro/ tree), the CLIs, the bundled data in
# share/copro, the CMake package (find_package(copro CONFIG)) and copro.pc (pkg-config). docs/install.md.
include(CMakePackageConfigHelpers)

set(COPRO_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/copro)
if(BUILD_SHARED_LIBS)
  set(_copro_installed copro_shared copro_sim_shared)
else()
  # Static: copro::copro and copro::sim with the internal archives they need (exported, not for direct use).
  set(_copro_installed copro copro_sim copro_core copro_collectives copro_transport copro_topologies)
  set_target_properties(copro_sim PROPERTIES EXPORT_NAME sim)
  foreach(_t copro_core copro_collectives copro_transport copro_topologies)
    string(REPLACE "copro_" "internal_" _name ${_t})
    set_target_properties(${_t} PROPERTIES EXPORT_NAME ${_name})
    get_target_property(_inc ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
                                           "$<BUILD_INTERFACE:${_inc}>;$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  endforeach()
  get_target_property(_inc copro_sim INTERFACE_INCLUDE_DIRECTORIES)
  set_target_properties(copro_sim PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
                                             "$<BUILD_INTERFACE:${_inc}>;$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
endif()
install(TARGETS ${_copro_installed} EXPORT coproTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(EXPORT coproTargets NAMESPACE copro:: DESTINATION ${COPRO_CMAKE_DIR} COMPONENT dev)

# Public headers: every module's include/copro/<module>/ and the umbrella headers, merged in one tree.
foreach(_dir core/include collectives/include sim/include topologies/include include)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_dir}/copro DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
          FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")
endforeach()

# The command-line tools (statically linked: they use internals the shared library hides).
foreach(_tool copro-sim copro-topo copro-info copro-study copro-perf copro-sim-bench)
  if(TARGET ${_tool})
    install(TARGETS ${_tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  endif()
endforeach()

install(FILES ${_copro_topology_yaml} DESTINATION ${CMAKE_INSTALL_DATADIR}/copro/topologies COMPONENT runtime)
install(FILES ${_copro_workload_yaml} DESTINATION ${CMAKE_INSTALL_DATADIR}/copro/workloads COMPONENT runtime)

# The CMake package and the pkg-config file.
set(COPRO_PACKAGE_HAS_MPI OFF)
if(MPI_C_FOUND)
  set(COPRO_PACKAGE_HAS_MPI ON)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/coproConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/coproConfig.cmake INSTALL_DESTINATION ${COPRO_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/coproConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/coproConfig.cmake ${PROJECT_BINARY_DIR}/coproConfigVersion.cmake
        DESTINATION ${COPRO_CMAKE_DIR} COMPONENT dev)

if(BUILD_SHARED_LIBS)
  set(COPRO_PC_LIBS "-lcopro")
  set(COPRO_PC_LIBS_PRIVATE "")
else()
  set(COPRO_PC_LIBS "-lcopro -lcopro_collectives -lcopro_transport -lcopro_topologies -lcopro_core")
  set(COPRO_PC_LIBS_PRIVATE "-lyaml-cpp -lstdc++ -lrt -lpthread -ldl")
  if(COPRO_HAVE_UCX)
    string(APPEND COPRO_PC_LIBS_PRIVATE " -lucp -luct -lucs")
  endif()
  if(COPRO_HAVE_HWLOC)
    string(APPEND COPRO_PC_LIBS_PRIVATE " -lhwloc")  # the verbs backend's rail mapping
  endif()
endif()
set(COPRO_PC_REQUIRES_PRIVATE "libcrypto")
if(MPI_C_FOUND)
  string(APPEND COPRO_PC_REQUIRES_PRIVATE " ompi-c")
endif()
# Relocatable: the prefix is found from the .pc file's own folder (<prefix>/<libdir>/pkgconfig).
file(RELATIVE_PATH COPRO_PC_UP /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${PROJECT_SOURCE_DIR}/cmake/copro.pc.in ${PROJECT_BINARY_DIR}/copro.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/copro.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

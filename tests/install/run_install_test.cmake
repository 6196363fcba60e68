# ctest `install_consumers`: installs the build tree into a scratch prefix, then builds and runs two external
# programs against that prefix alone: a C++ project through find_package(copro) and a C program through
# pkg-config, and a C program against the NCCL-compatible shim (copro::nccl; with mpicc, nccl_mp.c);
# checks the shared library's exports; and runs an installed tool from a moved copy of the
# prefix (it must find its bundled data there). Arguments: -DBUILD_DIR -DSOURCE_DIR -DSCRATCH -DC_COMPILER
# -DGENERATOR.
cmake_minimum_required(VERSION 3.16)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${what}: ${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
endfunction()

file(REMOVE_RECURSE ${SCRATCH})
set(prefix ${SCRATCH}/prefix)
run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# C++: find_package(copro CONFIG REQUIRED), copro::copro and copro::sim.
run("configure consumer" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${SCRATCH}/consumer -G
    ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run("build consumer" ${CMAKE_COMMAND} --build ${SCRATCH}/consumer)
run("consumer_cpp" ${SCRATCH}/consumer/consumer_cpp)
run("consumer_nccl" ${SCRATCH}/consumer/consumer_nccl)

# C: pkg-config alone.
file(GLOB_RECURSE pcfile ${prefix}/copro.pc)
if(NOT pcfile)
  message(FATAL_ERROR "no copro.pc under ${prefix}")
endif()
get_filename_component(pcdir ${pcfile} DIRECTORY)
get_filename_component(libdir ${pcdir} DIRECTORY)
execute_process(COMMAND ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${pcdir} pkg-config --cflags --libs copro
                RESULT_VARIABLE rc OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs copro failed")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run("compile consumer_c" ${C_COMPILER} -std=c11 -Wall -Werror ${SOURCE_DIR}/tests/install/consumer_c.c ${flags}
    -o ${SCRATCH}/consumer_c)
run("consumer_c" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${libdir} ${SCRATCH}/consumer_c)

# The NCCL-compatible API without CMake: tests/nccl/nccl_mp.c built with mpicc against the prefix alone
# (-I<prefix>/include/copro/nccl, -lcopro_nccl) and run on 2 processes.
if(MPICC AND MPIEXEC AND EXISTS ${libdir}/libcopro_nccl.so)
  run("compile nccl_mp" ${MPICC} -std=c11 -Wall -Werror ${SOURCE_DIR}/tests/nccl/nccl_mp.c -I${prefix}/include/copro/nccl
      -L${libdir} -lcopro_nccl -Wl,-rpath,${libdir} -o ${SCRATCH}/nccl_mp)
  run("nccl_mp" ${CMAKE_COMMAND} -E env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ${MPIEXEC} -np 2
      --oversubscribe ${SCRATCH}/nccl_mp)
endif()

# The shared library exports the public API only.
if(EXISTS ${libdir}/libcopro.so)
  execute_process(COMMAND sh -c "nm -D --defined-only '${libdir}/libcopro.so' | c++filt"
                  OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
  string(REGEX MATCHALL "copro::(transport|sim|topo)::[^\n]*|YAML::[^\n]*" leaked "${syms}")
  if(leaked)
    list(GET leaked 0 first)
    message(FATAL_ERROR "libcopro.so exports internal symbols, e.g. ${first}")
  endif()
  if(NOT syms MATCHES "copro_allreduce" OR NOT syms MATCHES "copro::collectives::Communicator::allReduce")
    message(FATAL_ERROR "libcopro.so does not export the public API")
  endif()
  execute_process(COMMAND sh -c "objdump -p '${libdir}/libcopro.so' | grep SONAME" OUTPUT_VARIABLE soname)
  message(STATUS "libcopro.so: ${soname}")
  if(NOT soname MATCHES "libcopro\\.so\\.[0-9]+")
    message(FATAL_ERROR "libcopro.so has no versioned SONAME: ${soname}")
  endif()
endif()

# The installed tools find share/copro beside their own bin/, also after the whole prefix moved.
if(EXISTS ${prefix}/bin/copro-topo)
  file(RENAME ${prefix} ${SCRATCH}/moved)
  run("moved copro-topo list" ${CMAKE_COMMAND} -E env --unset=COPRO_DATA_DIR --unset=COPRO_TOPOLOGY_PATH
      ${SCRATCH}/moved/bin/copro-topo list)
  execute_process(COMMAND ${SCRATCH}/moved/bin/copro-topo list OUTPUT_VARIABLE listed)
  if(NOT listed MATCHES "deepseek-v3" OR NOT listed MATCHES "h800-node")
    message(FATAL_ERROR "the moved install's copro-topo lists no bundled topology:\n${listed}")
  endif()
endif()

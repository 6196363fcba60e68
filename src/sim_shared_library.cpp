// libcopro_sim.so is made of the copro_sim and copro_topologies archives, whole (src/CMakeLists.txt); CMake
// needs one source file of the library's own to create it, and this is that file. It defines nothing.

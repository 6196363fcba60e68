#pragma once
/// The installed simulator library (libcopro_sim, CMake target copro::sim): its version, for programs that
/// load it at run time and want to check what they got.
extern "C" {
/// "major.minor.patch" of libcopro_sim (the same as copro::version() of the libcopro it was built with).
const char* copro_sim_version(void);
}

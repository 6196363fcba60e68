#pragma once
/// `COPRO_HD` marks functions that device code may call too: the flat interpreter, the portable lane
/// machine and the narrow-float conversions are compiled by the host compiler and by nvcc alike.
#if defined(__CUDACC__)
#define COPRO_HD __host__ __device__
#else
#define COPRO_HD
#endif

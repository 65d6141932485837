// Placeholder (issue 23): being written.
#include "reduce.cuh"

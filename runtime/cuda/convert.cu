// Placeholder (issue 23): being written.
#include "convert.cuh"

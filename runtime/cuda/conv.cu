// Placeholder (issue 23): being written.
#include "conv.cuh"

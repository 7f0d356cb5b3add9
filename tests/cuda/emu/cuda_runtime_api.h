/* cuda_runtime_api.h (emulator): see cuda_runtime.h. */
#include "cuda_runtime.h"

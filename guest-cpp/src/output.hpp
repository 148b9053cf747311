// Declared in include/wasi_gpu/output.hpp (the wasi_gpu::forest library); forest.hpp gives the
// guest those names.
#pragma once

#include "forest.hpp"

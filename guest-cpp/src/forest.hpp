// The guest's view of the forest library: everything of wasi_gpu::forest (Model, GpuTrainer,
// GpuPredictor, the readers, Failure / Expected, emit), declared in include/wasi_gpu/forest.hpp
// and its neighbours (the library's sources are the other .cpp files here), under the guest's
// namespace `guest`. Library declarations belong in include/wasi_gpu/, not here.
#pragma once

#include "wasi_gpu/forest.hpp"

namespace guest {
using namespace wasi_gpu::forest;
}  // namespace guest

// predict-forest (CUDA twin of predict_forest.rs): walks every tree for every row and
// sums the leaf values in wrapping u64. A walk that leaves the node array, names a
// feature out of range, or exceeds max_depth + 1 steps adds nothing. The threshold
// test is an exact IEEE f32 `<=` (NaN goes right); NVRTC runs with --ftz=false.
// One thread per row, grid-stride.

extern "C" __global__ void predict_forest(
    unsigned int rows,
    unsigned int features,
    unsigned int tree_count,
    unsigned int node_count,
    unsigned int max_depth,
    const float* __restrict__ x,
    const unsigned int* __restrict__ nodes,
    const unsigned int* __restrict__ roots,
    unsigned int* __restrict__ sums)
{
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long row = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; row < rows; row += stride) {
        const float* xs = x + row * features;
        unsigned long long total = 0;
        for (unsigned int t = 0; t < tree_count; ++t) {
            unsigned int node = roots[t];
            for (unsigned int step = 0; step <= max_depth; ++step) {
                if (node >= node_count) {
                    break;
                }
                const unsigned int* rec = nodes + (unsigned long long)node * 4ull;
                const unsigned int f = rec[0];
                if (f == 0xffffffffu) {
                    total += rec[1];
                    break;
                }
                if (f >= features) {
                    break;
                }
                node = xs[f] <= __uint_as_float(rec[1]) ? rec[2] : rec[3];
            }
        }
        sums[row * 2ull] = (unsigned int)total;
        sums[row * 2ull + 1ull] = (unsigned int)(total >> 32);
    }
}

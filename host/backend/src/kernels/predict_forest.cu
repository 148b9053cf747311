// predict-forest (CUDA twin of predict_forest.rs): walks every tree for every row and
// sums the 64-bit leaf values in a wrapping 128-bit integer (two unsigned long long
// halves with an explicit carry). A walk that leaves the node array, names a feature out
// of range, steps to a child that is not after its parent (index <= the current node, so
// no walk can cycle), or exceeds max_depth + 1 steps adds nothing. The threshold test is
// an exact IEEE f32 `<=` (NaN goes right); NVRTC runs with --ftz=false.
// One thread per row, grid-stride. sums: 4 u32 words per row, least significant first.

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
        unsigned long long lo = 0ull;
        unsigned long long hi = 0ull;
        for (unsigned int t = 0; t < tree_count; ++t) {
            unsigned int node = roots[t];
            for (unsigned long long step = 0; step <= (unsigned long long)max_depth; ++step) {
                if (node >= node_count) {
                    break;
                }
                const unsigned int* rec = nodes + (unsigned long long)node * 4ull;
                const unsigned int f = rec[0];
                if (f == 0xffffffffu) {
                    const unsigned long long v = (unsigned long long)rec[1] | ((unsigned long long)rec[2] << 32);
                    lo += v;
                    hi += (lo < v) ? 1ull : 0ull;
                    break;
                }
                if (f >= features) {
                    break;
                }
                const unsigned int next = xs[f] <= __uint_as_float(rec[1]) ? rec[2] : rec[3];
                if (next <= node) {
                    break;
                }
                node = next;
            }
        }
        unsigned int* out = sums + row * 4ull;
        out[0] = (unsigned int)lo;
        out[1] = (unsigned int)(lo >> 32);
        out[2] = (unsigned int)hi;
        out[3] = (unsigned int)(hi >> 32);
    }
}

// bootstrap (CUDA twin of bootstrap.rs): per-tree draw counts from the counter-based
// RNG of docs/algorithm.md §2, then root slots. The host zeroes `weights[..tree_count*rows]`
// first; `bootstrap_draws` adds one per (tree, draw) with an integer atomic (order-free),
// `bootstrap_roots` derives node-of from the finished counts.

static __device__ __forceinline__ unsigned int bs_mix32(unsigned int x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

extern "C" __global__ void bootstrap_draws(
    unsigned int seed_lo,
    unsigned int seed_hi,
    unsigned int rows,
    unsigned int tree_begin,
    unsigned int tree_count,
    unsigned int draws,
    unsigned int* __restrict__ weights)
{
    const unsigned long long total = (unsigned long long)tree_count * draws;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const unsigned int t = (unsigned int)(i / draws);
        const unsigned int d = (unsigned int)(i % draws);
        // key(seed_lo, seed_hi, 1, tree_begin + t, d)
        unsigned int h = 0x243f6a88u;
        h = bs_mix32(h ^ seed_lo);
        h = bs_mix32(h ^ seed_hi);
        h = bs_mix32(h ^ 1u);
        h = bs_mix32(h ^ (tree_begin + t));
        h = bs_mix32(h ^ d);
        const unsigned int row = (unsigned int)(((unsigned long long)h * rows) >> 32);
        atomicAdd(&weights[(unsigned long long)t * rows + row], 1u);
    }
}

extern "C" __global__ void bootstrap_roots(
    unsigned int rows,
    unsigned int tree_count,
    const unsigned int* __restrict__ weights,
    unsigned int* __restrict__ node_of)
{
    const unsigned long long total = (unsigned long long)tree_count * rows;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        node_of[i] = weights[i] > 0 ? (unsigned int)(i / rows) : 0xffffffffu;
    }
}

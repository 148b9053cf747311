// bin-features (CUDA twin of bin_features.rs): raw f32 features to one quantile-bin
// byte per row and feature. One thread per output word (feature, 4 rows), grid-stride.
//
// The bin is the reference's `edges.partition_point(|&e| e < v)`, reproduced step for
// step (the branch-free binary search of Rust's slice::binary_search_by), so even
// unsorted or NaN edges from a careless guest give the same byte as the CPU backend.

static __device__ __forceinline__ unsigned int bf_partition_point(const float* e, unsigned int n, float v) {
    // n >= 1 (max-bins >= 2).
    unsigned int size = n;
    unsigned int base = 0;
    while (size > 1) {
        unsigned int half = size / 2;
        unsigned int mid = base + half;
        if (e[mid] < v) {
            base = mid;
        }
        size -= half;
    }
    return base + (e[base] < v ? 1u : 0u);
}

extern "C" __global__ void bin_features(
    unsigned int rows,
    unsigned int features,
    unsigned int max_bins,
    const float* __restrict__ x,
    const float* __restrict__ edges,
    unsigned int* __restrict__ bins)
{
    const unsigned long long words = ((unsigned long long)rows + 3ull) / 4ull;
    const unsigned long long total = (unsigned long long)features * words;
    const unsigned int n_edges = max_bins - 1;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long index = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; index < total; index += stride) {
        const unsigned long long feature = index / words;
        const unsigned long long w = index % words;
        const float* e = edges + feature * n_edges;
        unsigned int packed = 0;
        for (unsigned int lane = 0; lane < 4; ++lane) {
            const unsigned long long row = w * 4ull + lane;
            if (row < rows) {
                const float v = x[row * features + feature];
                const unsigned int bin = bf_partition_point(e, n_edges, v);
                packed |= min(bin, 255u) << (lane * 8u);
            }
        }
        bins[index] = packed;
    }
}

// bin-features (CUDA twin of bin_features.rs): raw f32 features to one quantile-bin
// byte per row and feature. One thread per output word (feature, 4 rows), grid-stride.
//
// The bin is the number of edges e with e < v (docs/algorithm.md), counted edge by edge.
// The reference binary-searches sorted edges, which gives the same count, and counts
// unsorted (or NaN) ones; counting always is exact for both and costs at most 255
// comparisons per value, read from cache since a warp's threads share a feature.

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
        float v[4];
        unsigned int count[4] = {0u, 0u, 0u, 0u};
        for (unsigned int lane = 0; lane < 4; ++lane) {
            const unsigned long long row = w * 4ull + lane;
            // Rows past the end compare as NaN: no edge is below them, and they are not stored.
            v[lane] = row < rows ? x[row * features + feature] : __int_as_float(0x7fc00000);
        }
        for (unsigned int k = 0; k < n_edges; ++k) {
            const float edge = __ldg(e + k);
            for (unsigned int lane = 0; lane < 4; ++lane) {
                count[lane] += edge < v[lane] ? 1u : 0u;
            }
        }
        unsigned int packed = 0;
        for (unsigned int lane = 0; lane < 4; ++lane) {
            if (w * 4ull + lane < rows) {
                packed |= min(count[lane], 255u) << (lane * 8u);
            }
        }
        bins[index] = packed;
    }
}

// apply-splits (CUDA twin of apply_splits.rs): moves every (tree, row) to its child's
// slot in the next level, or to NONE when its slot is out of range, has no split, or
// names a feature out of range. One thread per entry, grid-stride.

extern "C" __global__ void apply_splits(
    unsigned int rows,
    unsigned int features,
    unsigned int tree_count,
    unsigned int slot_count,
    const unsigned int* __restrict__ bins,
    const unsigned int* __restrict__ splits,
    const unsigned int* __restrict__ next_slot,
    unsigned int* __restrict__ node_of)
{
    const unsigned long long words = ((unsigned long long)rows + 3ull) / 4ull;
    const unsigned long long total = (unsigned long long)tree_count * rows;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const unsigned int s = node_of[i];
        if (s >= slot_count) {
            node_of[i] = 0xffffffffu;
            continue;
        }
        // 12-word records (SPLIT_WORDS): feature in word 0, bin in word 1.
        const unsigned int* rec = splits + (unsigned long long)s * 12ull;
        const unsigned int feature = rec[0];
        if (feature >= features) {
            node_of[i] = 0xffffffffu;
            continue;
        }
        const unsigned long long row = i % rows;
        const unsigned int b = (bins[(unsigned long long)feature * words + row / 4ull] >> ((unsigned int)(row % 4ull) * 8u)) & 0xffu;
        const unsigned int side = b > rec[1] ? 1u : 0u;
        node_of[i] = next_slot[(unsigned long long)s * 2ull + side];
    }
}

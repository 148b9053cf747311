// build-histograms (CUDA twin of build_histograms.rs): exact integer (count, 64-bit
// target sum) histograms for one slot batch. The host zeroes the slot_count*features*
// max_bins*3 words of `hist` first. Grid y strides over features, grid x over the
// (tree, row) entries, so neighbouring threads read neighbouring rows and no index
// product can overflow. Counts use a 32-bit
// atomic (wrapping); the 64-bit sum is built from two 32-bit atomics with an explicit
// carry (the words are only 4-byte aligned), which is exact modulo 2^64 in any order.

extern "C" __global__ void build_histograms(
    unsigned int rows,
    unsigned int features,
    unsigned int max_bins,
    unsigned int tree_count,
    unsigned int slot_begin,
    unsigned int slot_count,
    const unsigned int* __restrict__ bins,
    const unsigned int* __restrict__ targets,
    const unsigned int* __restrict__ weights,
    const unsigned int* __restrict__ node_of,
    unsigned int* __restrict__ hist)
{
    const unsigned long long words = ((unsigned long long)rows + 3ull) / 4ull;
    const unsigned long long entries = (unsigned long long)tree_count * rows;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long j = blockIdx.y; j < features; j += gridDim.y)
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < entries; i += stride) {
        const unsigned int s = node_of[i];
        const unsigned int local = s - slot_begin;
        if (s < slot_begin || local >= slot_count) {
            continue;
        }
        const unsigned int w = weights[i];
        if (w == 0) {
            continue;
        }
        const unsigned long long row = i % rows;
        const unsigned int b = (bins[j * words + row / 4ull] >> ((unsigned int)(row % 4ull) * 8u)) & 0xffu;
        if (b >= max_bins) {
            continue;
        }
        const unsigned long long at = (((unsigned long long)local * features + j) * max_bins + b) * 3ull;
        atomicAdd(&hist[at], w);
        const unsigned long long v = (unsigned long long)w * targets[row];
        const unsigned int v_lo = (unsigned int)v;
        const unsigned int v_hi = (unsigned int)(v >> 32);
        const unsigned int old = atomicAdd(&hist[at + 1], v_lo);
        // v_hi <= 0xfffffffe (a product of two u32), so adding the carry cannot wrap.
        const unsigned int high = v_hi + ((unsigned int)(old + v_lo) < old ? 1u : 0u);
        if (high != 0) {
            atomicAdd(&hist[at + 2], high);
        }
    }
}

// The same histograms for batches of few slots (slot_count * max_bins <= BH_SHARED_CELLS,
// checked by the host): each block tallies its share of the entries for one feature into
// a shared-memory histogram (32-bit count, 64-bit sum, shared atomics), then adds every
// non-empty cell to `hist` with the global atomics above. Wrapping integer sums, so the
// result is the same in any order; the global atomics drop from one per entry to one per
// cell and block, which matters when every row falls into the same few nodes.
#define BH_SHARED_CELLS 3072

extern "C" __global__ void __launch_bounds__(256) build_histograms_shared(
    unsigned int rows,
    unsigned int features,
    unsigned int max_bins,
    unsigned int tree_count,
    unsigned int slot_begin,
    unsigned int slot_count,
    const unsigned int* __restrict__ bins,
    const unsigned int* __restrict__ targets,
    const unsigned int* __restrict__ weights,
    const unsigned int* __restrict__ node_of,
    unsigned int* __restrict__ hist)
{
    __shared__ unsigned int cell_count[BH_SHARED_CELLS];
    __shared__ unsigned long long cell_sum[BH_SHARED_CELLS];
    const unsigned int cells = min(slot_count * max_bins, (unsigned int)BH_SHARED_CELLS);
    const unsigned long long words = ((unsigned long long)rows + 3ull) / 4ull;
    const unsigned long long entries = (unsigned long long)tree_count * rows;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long j = blockIdx.y; j < features; j += gridDim.y) {
        for (unsigned int c = threadIdx.x; c < cells; c += blockDim.x) {
            cell_count[c] = 0;
            cell_sum[c] = 0;
        }
        __syncthreads();
        for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < entries; i += stride) {
            const unsigned int s = node_of[i];
            const unsigned int local = s - slot_begin;
            if (s < slot_begin || local >= slot_count) {
                continue;
            }
            const unsigned int w = weights[i];
            if (w == 0) {
                continue;
            }
            const unsigned long long row = i % rows;
            const unsigned int b = (bins[j * words + row / 4ull] >> ((unsigned int)(row % 4ull) * 8u)) & 0xffu;
            const unsigned int c = local * max_bins + b;
            if (b >= max_bins || c >= cells) {
                continue;
            }
            atomicAdd(&cell_count[c], w);
            atomicAdd(&cell_sum[c], (unsigned long long)w * targets[row]);
        }
        __syncthreads();
        for (unsigned int c = threadIdx.x; c < cells; c += blockDim.x) {
            const unsigned int n = cell_count[c];
            const unsigned long long v = cell_sum[c];
            if (n == 0 && v == 0) {
                continue;
            }
            const unsigned long long at = (((unsigned long long)(c / max_bins) * features + j) * max_bins + c % max_bins) * 3ull;
            atomicAdd(&hist[at], n);
            const unsigned int v_lo = (unsigned int)v;
            const unsigned int old = atomicAdd(&hist[at + 1], v_lo);
            // Modulo 2^32 the high word gains v's high word plus the low word's carry.
            const unsigned int high = (unsigned int)(v >> 32) + ((unsigned int)(old + v_lo) < old ? 1u : 0u);
            if (high != 0) {
                atomicAdd(&hist[at + 2], high);
            }
        }
        // The shared cells are zeroed again for the next feature.
        __syncthreads();
    }
}

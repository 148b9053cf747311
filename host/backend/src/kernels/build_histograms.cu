// build-histograms (CUDA twin of build_histograms.rs): exact integer histograms for one
// slot batch (docs/algorithm.md §6). A cell is 6 u32 words: (count, entries, sum lo,
// sum hi, min target, max target). build_histograms_init first writes every cell of the
// batch as untouched, (0, 0, 0, 0, 0xffffffff, 0): the output is overwritten, never
// accumulated. Grid y strides over features j_begin..j_end (the host launches blocks of
// features, so that one launch's work stays bounded and a cancel is seen between them),
// grid x over the (tree, row) entries, so neighbouring threads read neighbouring rows and
// no index product can overflow. Counts
// and entries use 32-bit atomics (wrapping); the 64-bit sum is built from two 32-bit
// atomics with an explicit carry (exact modulo 2^64 in any order); min and max use
// atomicMin / atomicMax. Integers, minima and maxima make the order irrelevant.

#define BH_HIST_WORDS 6ull

// Every cell of slot_count * features * max_bins becomes (0, 0, 0, 0, 0xffffffff, 0).
extern "C" __global__ void build_histograms_init(
    unsigned int features,
    unsigned int max_bins,
    unsigned int slot_count,
    unsigned int* __restrict__ hist)
{
    const unsigned long long cells = (unsigned long long)slot_count * features * max_bins;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < cells; i += stride) {
        unsigned int* c = hist + i * BH_HIST_WORDS;
        c[0] = 0u;
        c[1] = 0u;
        c[2] = 0u;
        c[3] = 0u;
        c[4] = 0xffffffffu;
        c[5] = 0u;
    }
}

// Adds (count n, entries e, 64-bit sum v, min lo, max hi) to the global cell `c`.
static __device__ __forceinline__ void bh_add_cell(
    unsigned int* c, unsigned int n, unsigned int e, unsigned long long v, unsigned int lo, unsigned int hi)
{
    if (n != 0u) {
        atomicAdd(&c[0], n);
    }
    if (e != 0u) {
        atomicAdd(&c[1], e);
    }
    const unsigned int v_lo = (unsigned int)v;
    const unsigned int v_hi = (unsigned int)(v >> 32);
    if (v_lo != 0u) {
        const unsigned int old = atomicAdd(&c[2], v_lo);
        // Modulo 2^32 the high word gains v's high word plus the low word's carry.
        const unsigned int high = v_hi + ((unsigned int)(old + v_lo) < old ? 1u : 0u);
        if (high != 0u) {
            atomicAdd(&c[3], high);
        }
    } else if (v_hi != 0u) {
        atomicAdd(&c[3], v_hi);
    }
    atomicMin(&c[4], lo);
    atomicMax(&c[5], hi);
}

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
    unsigned int* __restrict__ hist,
    unsigned int j_begin,
    unsigned int j_end)
{
    const unsigned long long words = ((unsigned long long)rows + 3ull) / 4ull;
    const unsigned long long entries = (unsigned long long)tree_count * rows;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long j = j_begin + (unsigned long long)blockIdx.y; j < j_end; j += gridDim.y)
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
        const unsigned long long at = (((unsigned long long)local * features + j) * max_bins + b) * BH_HIST_WORDS;
        const unsigned int t = targets[row];
        bh_add_cell(hist + at, w, 1u, (unsigned long long)w * t, t, t);
    }
}

// The same histograms for batches of few slots (slot_count * max_bins <= BH_SHARED_CELLS,
// checked by the host): each block tallies its share of the entries for one feature into
// a shared-memory histogram (32-bit count and entries, 64-bit sum, min, max; shared
// atomics), then adds every touched cell to `hist` with the global atomics above. Wrapping
// integer sums, minima and maxima, so the result is the same in any order; the global
// atomics drop from one per entry to one per cell and block, which matters when every row
// falls into the same few nodes. Static shared memory: 1536 cells x 24 bytes = 36 KiB
// (the limit is 48 KiB). SHARED_HIST_CELLS in host/cuda/src/backend.rs must equal it.
#define BH_SHARED_CELLS 1536

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
    unsigned int* __restrict__ hist,
    unsigned int j_begin,
    unsigned int j_end)
{
    __shared__ unsigned int cell_count[BH_SHARED_CELLS];
    __shared__ unsigned int cell_entries[BH_SHARED_CELLS];
    __shared__ unsigned int cell_min[BH_SHARED_CELLS];
    __shared__ unsigned int cell_max[BH_SHARED_CELLS];
    __shared__ unsigned long long cell_sum[BH_SHARED_CELLS];
    const unsigned int cells = min(slot_count * max_bins, (unsigned int)BH_SHARED_CELLS);
    const unsigned long long words = ((unsigned long long)rows + 3ull) / 4ull;
    const unsigned long long entries = (unsigned long long)tree_count * rows;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long j = j_begin + (unsigned long long)blockIdx.y; j < j_end; j += gridDim.y) {
        for (unsigned int c = threadIdx.x; c < cells; c += blockDim.x) {
            cell_count[c] = 0u;
            cell_entries[c] = 0u;
            cell_min[c] = 0xffffffffu;
            cell_max[c] = 0u;
            cell_sum[c] = 0ull;
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
            const unsigned int t = targets[row];
            atomicAdd(&cell_count[c], w);
            atomicAdd(&cell_entries[c], 1u);
            atomicAdd(&cell_sum[c], (unsigned long long)w * t);
            atomicMin(&cell_min[c], t);
            atomicMax(&cell_max[c], t);
        }
        __syncthreads();
        for (unsigned int c = threadIdx.x; c < cells; c += blockDim.x) {
            const unsigned int lo = cell_min[c];
            const unsigned int hi = cell_max[c];
            // Any entry leaves min <= max; an untouched cell keeps (0xffffffff, 0).
            if (lo > hi) {
                continue;
            }
            const unsigned long long at = (((unsigned long long)(c / max_bins) * features + j) * max_bins + c % max_bins) * BH_HIST_WORDS;
            bh_add_cell(hist + at, cell_count[c], cell_entries[c], cell_sum[c], lo, hi);
        }
        // The shared cells are reset again for the next feature.
        __syncthreads();
    }
}

// find-splits-rows (CUDA twin of find_splits_rows.rs): the split records of
// build-histograms + find-splits for one slot batch, computed from each slot's own rows,
// with no histogram in device memory.
//
// Uses fs_u128, fs_greater, fs_empty, fs_valid, fs_varies, fs_candidate, fs_gap_bin, fs_write_record, FS_NONE
// and FS_SPLIT_WORDS from find_splits.cu, which precedes this file in the one NVRTC
// translation unit, so both kernels apply the same candidate rules and record layout.
//
// Steps (one stream, in order):
//   fsr_count      counts[local slot] += 1 for every entry (tree, row) of the batch with
//                  a non-zero weight (32-bit atomics; the host zeroed counts).
//   fsr_scan_*     start = exclusive prefix sum of counts over slot_count + 1 elements
//                  (per-tile scans, one block scanning the tile totals, then a fix-up),
//                  so start[s]..start[s+1] is slot s's range and start[slot_count] the total.
//   fsr_scatter    order_row/order_w[start[s] + k] = (row, weight) of slot s's k-th entry,
//                  k from an atomic cursor (the host re-zeroed counts). The order inside
//                  a slot is arbitrary; every sum below is an exact wrapping integer sum,
//                  so it cannot matter.
//   find_splits_rows  one block per slot (grid-stride): totals (n, d, S, min and max
//                  target) from the entries whose feature-0 bin is in range, then as many
//                  allowed features at a time as FSR_HIST_CELLS bins hold (8 at 256 bins,
//                  up to FSR_GROUP_MAX) tallied into a shared histogram (count u32 +
//                  entries u32 + sum u64, shared atomics, wrapping), each feature scanned
//                  by one warp exactly as SplitSearch does: bins below max_bins - 1 in
//                  ascending order, empty bins skipped (fs_empty), valid candidates only
//                  (fs_valid: both sides at least max(1, min_samples_leaf) entries), exact
//                  128-bit score, strict > so the earliest (feature, bin) keeps a tie.
//                  A candidate's bin is the middle of the gap after it (fs_gap_bin); the
//                  first non-empty bin after a lane's range comes from a warp suffix
//                  minimum of each lane's first non-empty bin.
//                  Threads then reduce with the same order (higher score, then lower
//                  feature, then lower bin); the slot splits there when it is impure
//                  (min target < max target). A feature varies when some lane's scanned
//                  cell gives fs_varies (__any_sync); lane 0 adds it to a shared count,
//                  the record's word 10 (word 11: the impure flag).
//
// Static shared memory of find_splits_rows (limit 48 KiB): histogram 2048 cells x 16 B
// = 32 KiB, entry cache 512 x 16 B = 8 KiB, group list, partial totals and bests < 1 KiB.

#define FSR_THREADS 256
#define FSR_WARPS (FSR_THREADS / 32)
#define FSR_HIST_CELLS 2048
#define FSR_GROUP_MAX 64
#define FSR_CACHE 512
#define FSR_PER_THREAD 8
#define FSR_TILE (FSR_THREADS * FSR_PER_THREAD)
#define FSR_FULL 0xffffffffu

// The batch-local slot of entry i, or FS_NONE when it is outside the batch or weightless.
static __device__ __forceinline__ unsigned int fsr_local(
    unsigned long long i, unsigned int slot_begin, unsigned int slot_count,
    const unsigned int* __restrict__ weights, const unsigned int* __restrict__ node_of)
{
    const unsigned int s = node_of[i];
    const unsigned int local = s - slot_begin;
    if (s < slot_begin || local >= slot_count || weights[i] == 0u) {
        return FS_NONE;
    }
    return local;
}

extern "C" __global__ void fsr_count(
    unsigned int rows,
    unsigned int tree_count,
    unsigned int slot_begin,
    unsigned int slot_count,
    const unsigned int* __restrict__ weights,
    const unsigned int* __restrict__ node_of,
    unsigned int* __restrict__ counts)
{
    const unsigned long long entries = (unsigned long long)tree_count * rows;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < entries; i += stride) {
        const unsigned int local = fsr_local(i, slot_begin, slot_count, weights, node_of);
        if (local != FS_NONE) {
            atomicAdd(&counts[local], 1u);
        }
    }
}

// Exclusive prefix of `v` over the block (FSR_THREADS threads); `*total` gets the sum.
// Every thread of the block must call it.
static __device__ __forceinline__ unsigned int fsr_block_exclusive(unsigned int v, unsigned int* total) {
    __shared__ unsigned int warp_total[FSR_WARPS];
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int warp = threadIdx.x >> 5;
    unsigned int inclusive = v;
    for (unsigned int off = 1; off < 32; off *= 2) {
        const unsigned int y = __shfl_up_sync(FSR_FULL, inclusive, off);
        if (lane >= off) {
            inclusive += y;
        }
    }
    if (lane == 31u) {
        warp_total[warp] = inclusive;
    }
    __syncthreads();
    if (warp == 0) {
        unsigned int t = lane < FSR_WARPS ? warp_total[lane] : 0u;
        for (unsigned int off = 1; off < 32; off *= 2) {
            const unsigned int y = __shfl_up_sync(FSR_FULL, t, off);
            if (lane >= off) {
                t += y;
            }
        }
        if (lane < FSR_WARPS) {
            warp_total[lane] = t;
        }
    }
    __syncthreads();
    const unsigned int before = warp == 0 ? 0u : warp_total[warp - 1];
    *total = warp_total[FSR_WARPS - 1];
    __syncthreads();
    return before + inclusive - v;
}

// out[i] = exclusive prefix of in[] within tile i / FSR_TILE; tile_sums[tile] = its total.
extern "C" __global__ void __launch_bounds__(FSR_THREADS) fsr_scan_tiles(
    unsigned int n,
    const unsigned int* __restrict__ in,
    unsigned int* __restrict__ out,
    unsigned int* __restrict__ tile_sums)
{
    const unsigned int tiles = (unsigned int)(((unsigned long long)n + FSR_TILE - 1) / FSR_TILE);
    for (unsigned int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const unsigned long long base = (unsigned long long)tile * FSR_TILE + (unsigned long long)threadIdx.x * FSR_PER_THREAD;
        unsigned int v[FSR_PER_THREAD];
        unsigned int sum = 0;
        for (unsigned int k = 0; k < FSR_PER_THREAD; ++k) {
            v[k] = base + k < n ? in[base + k] : 0u;
            sum += v[k];
        }
        unsigned int total;
        unsigned int run = fsr_block_exclusive(sum, &total);
        for (unsigned int k = 0; k < FSR_PER_THREAD; ++k) {
            if (base + k < n) {
                out[base + k] = run;
            }
            run += v[k];
        }
        if (threadIdx.x == 0) {
            tile_sums[tile] = total;
        }
    }
}

// In place: tile_sums = its exclusive prefix. Launched as exactly one block.
extern "C" __global__ void __launch_bounds__(FSR_THREADS) fsr_scan_sums(unsigned int tiles, unsigned int* __restrict__ tile_sums) {
    if (blockIdx.x != 0) {
        return;
    }
    unsigned int carry = 0;
    for (unsigned long long chunk = 0; chunk < tiles; chunk += FSR_TILE) {
        const unsigned long long base = chunk + (unsigned long long)threadIdx.x * FSR_PER_THREAD;
        unsigned int v[FSR_PER_THREAD];
        unsigned int sum = 0;
        for (unsigned int k = 0; k < FSR_PER_THREAD; ++k) {
            v[k] = base + k < tiles ? tile_sums[base + k] : 0u;
            sum += v[k];
        }
        unsigned int total;
        unsigned int run = carry + fsr_block_exclusive(sum, &total);
        for (unsigned int k = 0; k < FSR_PER_THREAD; ++k) {
            if (base + k < tiles) {
                tile_sums[base + k] = run;
            }
            run += v[k];
        }
        carry += total;
    }
}

// out[i] += tile_sums[i / FSR_TILE]: the tile-local prefixes become global ones.
extern "C" __global__ void fsr_scan_add(unsigned int n, unsigned int* __restrict__ out, const unsigned int* __restrict__ tile_sums) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] += tile_sums[i / FSR_TILE];
    }
}

extern "C" __global__ void fsr_scatter(
    unsigned int rows,
    unsigned int tree_count,
    unsigned int slot_begin,
    unsigned int slot_count,
    const unsigned int* __restrict__ weights,
    const unsigned int* __restrict__ node_of,
    const unsigned int* __restrict__ start,
    unsigned int* __restrict__ cursor,
    unsigned int* __restrict__ order_row,
    unsigned int* __restrict__ order_w)
{
    const unsigned long long entries = (unsigned long long)tree_count * rows;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < entries; i += stride) {
        const unsigned int local = fsr_local(i, slot_begin, slot_count, weights, node_of);
        if (local != FS_NONE) {
            const unsigned int at = start[local] + atomicAdd(&cursor[local], 1u);
            order_row[at] = (unsigned int)(i % rows);
            order_w[at] = weights[i];
        }
    }
}

static __device__ __forceinline__ unsigned int fsr_bin(
    const unsigned int* __restrict__ bins, unsigned long long words, unsigned int feature, unsigned int row)
{
    return (bins[(unsigned long long)feature * words + row / 4u] >> ((row % 4u) * 8u)) & 0xffu;
}

// The running best of one thread: feature FS_NONE while it has none.
struct fsr_best {
    fs_u128 score;
    unsigned int feature;
    unsigned int bin;
    unsigned int nl;
    unsigned int dl;
    unsigned long long sl;
};

// Whether candidate b beats a: a higher score, or an equal one at a lower feature, or
// at the same feature a lower bin. A total order, so any reduction tree agrees with the
// sequential "first strict maximum" of SplitSearch.
static __device__ __forceinline__ bool fsr_beats(const fsr_best& b, const fsr_best& a) {
    if (b.feature == FS_NONE) {
        return false;
    }
    if (a.feature == FS_NONE || fs_greater(b.score, a.score)) {
        return true;
    }
    if (fs_greater(a.score, b.score)) {
        return false;
    }
    return b.feature < a.feature || (b.feature == a.feature && b.bin < a.bin);
}

static __device__ __forceinline__ fsr_best fsr_shfl_down(const fsr_best& a, unsigned int off) {
    fsr_best r;
    r.score.hi = __shfl_down_sync(FSR_FULL, a.score.hi, off);
    r.score.lo = __shfl_down_sync(FSR_FULL, a.score.lo, off);
    r.feature = __shfl_down_sync(FSR_FULL, a.feature, off);
    r.bin = __shfl_down_sync(FSR_FULL, a.bin, off);
    r.nl = __shfl_down_sync(FSR_FULL, a.nl, off);
    r.dl = __shfl_down_sync(FSR_FULL, a.dl, off);
    r.sl = __shfl_down_sync(FSR_FULL, a.sl, off);
    return r;
}

extern "C" __global__ void __launch_bounds__(FSR_THREADS) find_splits_rows(
    unsigned int rows,
    unsigned int features,
    unsigned int max_bins,
    unsigned int slot_begin,
    unsigned int slot_count,
    unsigned int min_samples_leaf,
    unsigned int mask_words,
    const unsigned int* __restrict__ bins,
    const unsigned int* __restrict__ targets,
    const unsigned int* __restrict__ feature_mask,
    const unsigned int* __restrict__ start,
    const unsigned int* __restrict__ order_row,
    const unsigned int* __restrict__ order_w,
    unsigned int* __restrict__ splits)
{
    __shared__ unsigned int h_count[FSR_HIST_CELLS];
    __shared__ unsigned int h_entries[FSR_HIST_CELLS];
    __shared__ unsigned long long h_sum[FSR_HIST_CELLS];
    __shared__ unsigned int c_row[FSR_CACHE];
    __shared__ unsigned int c_w[FSR_CACHE];
    __shared__ unsigned long long c_v[FSR_CACHE];
    __shared__ unsigned int group[FSR_GROUP_MAX];
    __shared__ unsigned int group_size;
    __shared__ unsigned long long next_feature;
    __shared__ unsigned int varying_count;
    __shared__ unsigned int part_n[FSR_WARPS];
    __shared__ unsigned int part_d[FSR_WARPS];
    __shared__ unsigned int part_min[FSR_WARPS];
    __shared__ unsigned int part_max[FSR_WARPS];
    __shared__ unsigned long long part_s[FSR_WARPS];
    __shared__ fsr_best part_best[FSR_WARPS];

    const unsigned int tid = threadIdx.x;
    const unsigned int lane = tid & 31u;
    const unsigned int warp = tid >> 5;
    const unsigned int min_leaf = max(min_samples_leaf, 1u);
    const unsigned long long words = ((unsigned long long)rows + 3ull) / 4ull;
    // Candidate bins are 0 .. max_bins - 2; lane l scans `per_lane` consecutive ones.
    const unsigned int candidates = max_bins - 1;
    const unsigned int per_lane = (candidates + 31u) / 32u;
    // Features per round: their histograms fill at most FSR_HIST_CELLS (max_bins <= 256).
    const unsigned int group_cap = min(FSR_HIST_CELLS / max_bins, (unsigned int)FSR_GROUP_MAX);

    for (unsigned int slot = blockIdx.x; slot < slot_count; slot += gridDim.x) {
        const unsigned int first = start[slot];
        const unsigned int count = start[slot + 1] - first;
        const bool cached = count <= FSR_CACHE;

        // Totals over feature 0's in-range bins (weighted count, entries, weighted sum,
        // target minimum and maximum); small slots keep their entries in shared memory.
        unsigned int n_part = 0, d_part = 0, min_part = 0xffffffffu, max_part = 0u;
        unsigned long long s_part = 0;
        for (unsigned int e = tid; e < count; e += FSR_THREADS) {
            const unsigned int row = order_row[first + e];
            const unsigned int w = order_w[first + e];
            const unsigned int t = targets[row];
            const unsigned long long v = (unsigned long long)w * t;
            if (cached) {
                c_row[e] = row;
                c_w[e] = w;
                c_v[e] = v;
            }
            if (fsr_bin(bins, words, 0u, row) < max_bins) {
                n_part += w;
                d_part += 1u;
                s_part += v;
                min_part = min(min_part, t);
                max_part = max(max_part, t);
            }
        }
        for (unsigned int off = 16; off > 0; off /= 2) {
            n_part += __shfl_xor_sync(FSR_FULL, n_part, off);
            d_part += __shfl_xor_sync(FSR_FULL, d_part, off);
            s_part += __shfl_xor_sync(FSR_FULL, s_part, off);
            min_part = min(min_part, __shfl_xor_sync(FSR_FULL, min_part, off));
            max_part = max(max_part, __shfl_xor_sync(FSR_FULL, max_part, off));
        }
        if (lane == 0) {
            part_n[warp] = n_part;
            part_d[warp] = d_part;
            part_s[warp] = s_part;
            part_min[warp] = min_part;
            part_max[warp] = max_part;
        }
        if (tid == 0) {
            next_feature = 0;
            varying_count = 0;
        }
        __syncthreads();
        unsigned int n = 0, d = 0, t_min = 0xffffffffu, t_max = 0u;
        unsigned long long s = 0;
        for (unsigned int k = 0; k < FSR_WARPS; ++k) {
            n += part_n[k];
            d += part_d[k];
            s += part_s[k];
            t_min = min(t_min, part_min[k]);
            t_max = max(t_max, part_max[k]);
        }

        fsr_best best;
        best.score.hi = 0;
        best.score.lo = 0;
        best.feature = FS_NONE;
        best.bin = 0;
        best.nl = 0;
        best.dl = 0;
        best.sl = 0;
        // count, t_min and t_max are the same in every thread, so the whole block takes this
        // branch or none. A pure slot is a leaf whatever its candidates, and a slot without
        // entries has none (dl stays 0).
        while (count != 0 && t_min < t_max) {
            if (tid == 0) {
                // The next group_cap features allowed by this slot's mask, ascending.
                unsigned long long j = next_feature;
                unsigned int size = 0;
                while (size < group_cap && j < features) {
                    if (mask_words != 0) {
                        const unsigned int word =
                            feature_mask[(unsigned long long)slot * mask_words + j / 32ull] >> (unsigned int)(j % 32ull);
                        if (word == 0) {
                            j = (j / 32ull + 1ull) * 32ull;
                            continue;
                        }
                        j += (unsigned long long)(__ffs(word) - 1);
                        if (j >= features) {
                            break;
                        }
                    }
                    group[size++] = (unsigned int)j;
                    ++j;
                }
                group_size = size;
                next_feature = j;
            }
            __syncthreads();
            const unsigned int size = group_size;
            if (size == 0) {
                break;
            }
            for (unsigned int c = tid; c < size * max_bins; c += FSR_THREADS) {
                h_count[c] = 0;
                h_entries[c] = 0;
                h_sum[c] = 0;
            }
            __syncthreads();
            for (unsigned int e = tid; e < count; e += FSR_THREADS) {
                unsigned int row, w;
                unsigned long long v;
                if (cached) {
                    row = c_row[e];
                    w = c_w[e];
                    v = c_v[e];
                } else {
                    row = order_row[first + e];
                    w = order_w[first + e];
                    v = (unsigned long long)w * targets[row];
                }
                for (unsigned int g = 0; g < size; ++g) {
                    const unsigned int b = fsr_bin(bins, words, group[g], row);
                    if (b < max_bins) {
                        atomicAdd(&h_count[g * max_bins + b], w);
                        atomicAdd(&h_entries[g * max_bins + b], 1u);
                        atomicAdd(&h_sum[g * max_bins + b], v);
                    }
                }
            }
            __syncthreads();
            // Warp w scans the group's features w, w + FSR_WARPS, ...: ascending, like the groups.
            for (unsigned int g = warp; g < size; g += FSR_WARPS) {
                const unsigned int j = group[g];
                const unsigned int* hc = h_count + g * max_bins;
                const unsigned int* he = h_entries + g * max_bins;
                const unsigned long long* hs = h_sum + g * max_bins;
                const unsigned int lo = min(lane * per_lane, candidates);
                const unsigned int hi = min(lo + per_lane, candidates);
                unsigned int mine_n = 0, mine_d = 0;
                unsigned long long mine_s = 0;
                // This lane's first non-empty bin, `candidates` (max_bins - 1) when none.
                unsigned int mine_first = candidates;
                for (unsigned int b = lo; b < hi; ++b) {
                    if (!fs_empty(hc[b], he[b], hs[b])) {
                        mine_n += hc[b];
                        mine_d += he[b];
                        mine_s += hs[b];
                        mine_first = min(mine_first, b);
                    }
                }
                // Inclusive suffix minimum of mine_first; shifted down one lane it is the
                // first non-empty bin after this lane's range (`candidates` when none).
                unsigned int suffix_first = mine_first;
                for (unsigned int off = 1; off < 32; off *= 2) {
                    const unsigned int y = __shfl_down_sync(FSR_FULL, suffix_first, off);
                    if (lane + off < 32u) {
                        suffix_first = min(suffix_first, y);
                    }
                }
                unsigned int next_first = __shfl_down_sync(FSR_FULL, suffix_first, 1);
                if (lane == 31u) {
                    next_first = candidates;
                }
                // Inclusive warp scan; subtracting our own part leaves the bins before `lo`.
                unsigned int inc_n = mine_n, inc_d = mine_d;
                unsigned long long inc_s = mine_s;
                for (unsigned int off = 1; off < 32; off *= 2) {
                    const unsigned int yn = __shfl_up_sync(FSR_FULL, inc_n, off);
                    const unsigned int yd = __shfl_up_sync(FSR_FULL, inc_d, off);
                    const unsigned long long ys = __shfl_up_sync(FSR_FULL, inc_s, off);
                    if (lane >= off) {
                        inc_n += yn;
                        inc_d += yd;
                        inc_s += ys;
                    }
                }
                unsigned int nl = inc_n - mine_n;
                unsigned int dl = inc_d - mine_d;
                unsigned long long sl = inc_s - mine_s;
                bool varies = false;
                // Whether best.bin is this feature's candidate b still waiting for the first
                // non-empty bin after it (fs_gap_bin): in this range, else next_first.
                bool open = false;
                for (unsigned int b = lo; b < hi; ++b) {
                    const unsigned int c = hc[b];
                    const unsigned int e = he[b];
                    const unsigned long long v = hs[b];
                    if (fs_empty(c, e, v)) {
                        continue;
                    }
                    if (open) {
                        best.bin = fs_gap_bin(best.bin, b);
                        open = false;
                    }
                    nl += c;
                    dl += e;
                    sl += v;
                    varies = varies || fs_varies(dl, d);
                    if (!fs_valid(nl, dl, n, d, min_leaf)) {
                        continue;
                    }
                    const fs_u128 sc = fs_candidate(sl, nl, s, n);
                    // This thread sees (feature, bin) ascending, so strict > keeps the earliest.
                    if (best.feature == FS_NONE || fs_greater(sc, best.score)) {
                        best.score = sc;
                        best.feature = j;
                        best.bin = b;
                        best.nl = nl;
                        best.dl = dl;
                        best.sl = sl;
                        open = true;
                    }
                }
                if (open) {
                    best.bin = fs_gap_bin(best.bin, next_first);
                }
                // The whole warp reaches this (g is warp-uniform).
                if (__any_sync(FSR_FULL, varies) && lane == 0) {
                    atomicAdd(&varying_count, 1u);
                }
            }
            // The group list and histograms are rewritten next round.
            __syncthreads();
        }

        for (unsigned int off = 16; off > 0; off /= 2) {
            const fsr_best other = fsr_shfl_down(best, off);
            if (fsr_beats(other, best)) {
                best = other;
            }
        }
        if (lane == 0) {
            part_best[warp] = best;
        }
        __syncthreads();
        if (tid == 0) {
            fsr_best top = part_best[0];
            for (unsigned int k = 1; k < FSR_WARPS; ++k) {
                if (fsr_beats(part_best[k], top)) {
                    top = part_best[k];
                }
            }
            // Split at the best valid candidate whenever the slot is impure.
            const bool split = top.feature != FS_NONE && t_min < t_max;
            unsigned int* rec = splits + ((unsigned long long)slot_begin + slot) * FS_SPLIT_WORDS;
            fs_write_record(rec, split, top.feature, top.bin, top.nl, top.dl, top.sl, n, d, s, varying_count, t_min < t_max);
        }
        // Shared totals, cache and partial bests are reused by the next slot.
        __syncthreads();
    }
}

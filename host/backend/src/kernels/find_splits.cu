// find-splits (CUDA twin of find_splits.rs): the best (feature, bin) of every slot by
// the exact score floor(SL^2/nL) + floor(SR^2/nR) in wrapping 128-bit integers
// (docs/algorithm.md §7).
//
// One block per slot (grid-stride over slots). Thread 0 sums feature 0's in-range bins
// for the totals (n, d, S, min target, max target); each thread scans its features
// (t, t + blockDim, ...) in ascending order, bins ascending, keeping the first strict
// maximum among the valid candidates (both sides at least max(1, min_samples_leaf)
// entries); a shared-memory reduction then keeps the highest score, ties to the lower
// feature. That is exactly the CPU order "highest score, ties to the lower feature, then
// the lower bin". The slot splits at its best valid candidate when one exists and it is
// impure (min target < max target); otherwise its record is a leaf. A candidate's bin is
// the middle of the gap after its last non-empty left bin (fs_gap_bin), resolved at the
// next non-empty bin of the scan or at the feature's end. Each thread also counts its
// allowed features that vary in the slot (fs_varies at some scanned cell), summed into
// the record's word 10 through a shared counter; word 11 is the impure flag.
// 128-bit values are (hi, lo) pairs; the division is schoolbook on 32-bit limbs, so no
// compiler support for __int128 division is needed.
//
// The helpers fs_* (score, candidate rules, record writer) are shared with
// find_splits_rows.cu, which follows this file in the one NVRTC translation unit.

#define FS_THREADS 128
#define FS_NONE 0xffffffffu
// u32 words per histogram cell: count, entries, sum lo, sum hi, min target, max target
// (HIST_WORDS in params.rs).
#define FS_HIST_WORDS 6ull
// u32 words per split record: feature, bin, nL, dL, SL lo, SL hi, n, d, S lo, S hi,
// varying, impure (SPLIT_WORDS in params.rs).
#define FS_SPLIT_WORDS 12ull

struct fs_u128 {
    unsigned long long hi;
    unsigned long long lo;
};

// floor(s^2 / n), n != 0, exact for every 64-bit s (the square is the full 128 bits).
static __device__ __forceinline__ fs_u128 fs_score(unsigned long long s, unsigned int n) {
    const unsigned long long p_lo = s * s;
    const unsigned long long p_hi = __umul64hi(s, s);
    fs_u128 r;
    if (p_hi == 0) {
        // s < 2^32: one 64-bit division is exact.
        r.hi = 0ull;
        r.lo = p_lo / n;
        return r;
    }
    // Schoolbook division of (p_hi, p_lo) by the 32-bit n: the high 64 bits at once,
    // then two 32-bit limbs, each step's dividend (rem << 32 | limb) below n * 2^32.
    const unsigned long long q_hi = p_hi / n;
    unsigned long long rem = p_hi - q_hi * n;
    unsigned long long cur = (rem << 32) | (p_lo >> 32);
    const unsigned long long q1 = cur / n;
    rem = cur - q1 * n;
    cur = (rem << 32) | (p_lo & 0xffffffffull);
    const unsigned long long q0 = cur / n;
    r.hi = q_hi;
    r.lo = (q1 << 32) | q0;
    return r;
}

static __device__ __forceinline__ fs_u128 fs_add(fs_u128 a, fs_u128 b) {
    fs_u128 r;
    r.lo = a.lo + b.lo;
    r.hi = a.hi + b.hi + (r.lo < a.lo ? 1ull : 0ull);
    return r;
}

static __device__ __forceinline__ bool fs_greater(fs_u128 a, fs_u128 b) {
    return a.hi > b.hi || (a.hi == b.hi && a.lo > b.lo);
}

// Whether a histogram cell (weighted count c, entries e, weighted sum v) adds nothing and
// is skipped: no row reached it. Must match SplitSearch in find_splits.rs.
static __device__ __forceinline__ bool fs_empty(unsigned int c, unsigned int e, unsigned long long v) {
    return c == 0u && e == 0u && v == 0ull;
}

// Whether left = (nl, dl) of a slot with totals (n, d) is a valid candidate: both sides
// have at least min_leaf = max(1, min_samples_leaf) entries (wrapping u32 differences).
// Must match SplitSearch in find_splits.rs.
static __device__ __forceinline__ bool fs_valid(
    unsigned int nl, unsigned int dl, unsigned int n, unsigned int d, unsigned int min_leaf)
{
    return dl >= min_leaf && d - dl >= min_leaf && nl != 0u && n - nl != 0u;
}

// Whether a feature whose scan has reached left entries dl (wrapping u32 sum) of a slot
// with d entries is not constant in the slot: 0 < dl < d, whatever min_samples_leaf says.
// Must match SplitSearch in find_splits.rs.
static __device__ __forceinline__ bool fs_varies(unsigned int dl, unsigned int d) {
    return 0u < dl && dl < d;
}

// The candidate's score floor(sl^2 / nl) + floor(sr^2 / nr), wrapping; nl, nr != 0.
static __device__ __forceinline__ fs_u128 fs_candidate(
    unsigned long long sl, unsigned int nl, unsigned long long s, unsigned int n)
{
    return fs_add(fs_score(sl, nl), fs_score(s - sl, n - nl));
}

// The record's bin for a candidate whose last non-empty left bin is b and whose first
// non-empty bin after b (among the candidate bins, else max_bins - 1) is c: the middle of
// the gap, b + (c - 1 - b) / 2. Monotone in b across a feature's candidates, so comparing
// reported bins orders candidates as comparing b does. Must match SplitSearch in
// find_splits.rs.
static __device__ __forceinline__ unsigned int fs_gap_bin(unsigned int b, unsigned int c) {
    return b + (c - 1u - b) / 2u;
}

// Writes a slot's 12-word record at `rec`: a split at (feature, bin) with left
// (nl, dl, sl) when `split`, else a leaf (feature NONE, words 1-5 zero); words 6-9 are
// the slot's totals (n, d, S), word 10 its count of varying allowed features, word 11
// whether it is impure.
static __device__ __forceinline__ void fs_write_record(
    unsigned int* rec, bool split, unsigned int feature, unsigned int bin, unsigned int nl, unsigned int dl,
    unsigned long long sl, unsigned int n, unsigned int d, unsigned long long s, unsigned int varying, bool impure)
{
    rec[0] = split ? feature : FS_NONE;
    rec[1] = split ? bin : 0u;
    rec[2] = split ? nl : 0u;
    rec[3] = split ? dl : 0u;
    rec[4] = split ? (unsigned int)sl : 0u;
    rec[5] = split ? (unsigned int)(sl >> 32) : 0u;
    rec[6] = n;
    rec[7] = d;
    rec[8] = (unsigned int)s;
    rec[9] = (unsigned int)(s >> 32);
    rec[10] = varying;
    rec[11] = impure ? 1u : 0u;
}

extern "C" __global__ void __launch_bounds__(FS_THREADS) find_splits(
    unsigned int features,
    unsigned int max_bins,
    unsigned int slot_begin,
    unsigned int slot_count,
    unsigned int min_samples_leaf,
    unsigned int mask_words,
    const unsigned int* __restrict__ hist,
    const unsigned int* __restrict__ feature_mask,
    unsigned int* __restrict__ splits)
{
    __shared__ unsigned long long sh_hi[FS_THREADS];
    __shared__ unsigned long long sh_lo[FS_THREADS];
    __shared__ unsigned int sh_feature[FS_THREADS];
    __shared__ unsigned int sh_bin[FS_THREADS];
    __shared__ unsigned int sh_nl[FS_THREADS];
    __shared__ unsigned int sh_dl[FS_THREADS];
    __shared__ unsigned long long sh_sl[FS_THREADS];
    __shared__ unsigned int sh_n;
    __shared__ unsigned int sh_d;
    __shared__ unsigned int sh_min;
    __shared__ unsigned int sh_max;
    __shared__ unsigned long long sh_s;
    __shared__ unsigned int sh_varying;

    const unsigned int tid = threadIdx.x;
    const unsigned int min_leaf = max(min_samples_leaf, 1u);
    const unsigned long long per_slot = (unsigned long long)features * max_bins * FS_HIST_WORDS;

    for (unsigned int slot = blockIdx.x; slot < slot_count; slot += gridDim.x) {
        const unsigned int* h = hist + (unsigned long long)slot * per_slot;
        if (tid == 0) {
            unsigned int n = 0, d = 0, lo = 0xffffffffu, hi = 0u;
            unsigned long long s = 0;
            for (unsigned int b = 0; b < max_bins; ++b) {
                const unsigned int* c = h + (unsigned long long)b * FS_HIST_WORDS;
                n += c[0];
                d += c[1];
                s += (unsigned long long)c[2] | ((unsigned long long)c[3] << 32);
                lo = min(lo, c[4]);
                hi = max(hi, c[5]);
            }
            sh_n = n;
            sh_d = d;
            sh_s = s;
            sh_min = lo;
            sh_max = hi;
            sh_varying = 0u;
        }
        __syncthreads();
        const unsigned int n = sh_n;
        const unsigned int d = sh_d;
        const unsigned long long s = sh_s;
        // A pure slot is a leaf whatever its candidates: skip the scan (block-uniform).
        const bool impure = sh_min < sh_max;

        fs_u128 best_score = {0ull, 0ull};
        unsigned int best_feature = FS_NONE, best_bin = 0, best_nl = 0, best_dl = 0;
        unsigned long long best_sl = 0;
        unsigned int varying = 0;
        for (unsigned int j = tid; impure && j < features; j += blockDim.x) {
            if (mask_words != 0 &&
                ((feature_mask[(unsigned long long)slot * mask_words + j / 32u] >> (j % 32u)) & 1u) == 0) {
                continue;
            }
            const unsigned int* hj = h + (unsigned long long)j * max_bins * FS_HIST_WORDS;
            unsigned int nl = 0, dl = 0;
            unsigned long long sl = 0;
            bool varies = false;
            // Whether best_bin is this feature's candidate b still waiting for the first
            // non-empty bin c after it (fs_gap_bin).
            bool open = false;
            for (unsigned int b = 0; b + 1 < max_bins; ++b) {
                const unsigned int* c = hj + (unsigned long long)b * FS_HIST_WORDS;
                const unsigned int cn = c[0];
                const unsigned int cd = c[1];
                const unsigned long long cv = (unsigned long long)c[2] | ((unsigned long long)c[3] << 32);
                if (fs_empty(cn, cd, cv)) {
                    continue;
                }
                if (open) {
                    best_bin = fs_gap_bin(best_bin, b);
                    open = false;
                }
                nl += cn;
                dl += cd;
                sl += cv;
                varies = varies || fs_varies(dl, d);
                if (!fs_valid(nl, dl, n, d, min_leaf)) {
                    continue;
                }
                const fs_u128 sc = fs_candidate(sl, nl, s, n);
                if (best_feature == FS_NONE || fs_greater(sc, best_score)) {
                    best_score = sc;
                    best_feature = j;
                    best_bin = b;
                    best_nl = nl;
                    best_dl = dl;
                    best_sl = sl;
                    open = true;
                }
            }
            if (open) {
                best_bin = fs_gap_bin(best_bin, max_bins - 1u);
            }
            varying += varies ? 1u : 0u;
        }
        // Read by thread 0 after the reduction's barriers.
        if (varying != 0u) {
            atomicAdd(&sh_varying, varying);
        }
        sh_hi[tid] = best_score.hi;
        sh_lo[tid] = best_score.lo;
        sh_feature[tid] = best_feature;
        sh_bin[tid] = best_bin;
        sh_nl[tid] = best_nl;
        sh_dl[tid] = best_dl;
        sh_sl[tid] = best_sl;
        __syncthreads();
        for (unsigned int width = FS_THREADS / 2; width > 0; width /= 2) {
            if (tid < width) {
                const unsigned int o = tid + width;
                const unsigned int fa = sh_feature[tid];
                const unsigned int fb = sh_feature[o];
                bool take_other = false;
                if (fb != FS_NONE) {
                    if (fa == FS_NONE) {
                        take_other = true;
                    } else {
                        const fs_u128 a = {sh_hi[tid], sh_lo[tid]};
                        const fs_u128 b = {sh_hi[o], sh_lo[o]};
                        take_other = fs_greater(b, a) || (!fs_greater(a, b) && fb < fa);
                    }
                }
                if (take_other) {
                    sh_hi[tid] = sh_hi[o];
                    sh_lo[tid] = sh_lo[o];
                    sh_feature[tid] = fb;
                    sh_bin[tid] = sh_bin[o];
                    sh_nl[tid] = sh_nl[o];
                    sh_dl[tid] = sh_dl[o];
                    sh_sl[tid] = sh_sl[o];
                }
            }
            __syncthreads();
        }
        if (tid == 0) {
            // Split at the best valid candidate whenever the slot is impure.
            const bool split = sh_feature[0] != FS_NONE && impure;
            unsigned int* rec = splits + ((unsigned long long)slot_begin + slot) * FS_SPLIT_WORDS;
            fs_write_record(rec, split, sh_feature[0], sh_bin[0], sh_nl[0], sh_dl[0], sh_sl[0], n, d, s, sh_varying, impure);
        }
        // The shared totals and reduction arrays are reused by the next slot.
        __syncthreads();
    }
}

// find-splits (CUDA twin of find_splits.rs): the best (feature, bin) of every slot by
// the exact score floor(SL^2/nL) + floor(SR^2/nR) in wrapping 128-bit integers.
//
// One block per slot (grid-stride over slots). Thread 0 sums feature 0's histogram for
// the totals (n, S); each thread scans its features (t, t + blockDim, ...) in ascending
// order, bins ascending, keeping the first strict maximum; a shared-memory reduction
// then keeps the highest score, ties to the lower feature. That is exactly the CPU
// order "highest score, ties to the lower feature, then the lower bin".
// 128-bit values are (hi, lo) pairs; the division is schoolbook on 32-bit limbs, so no
// compiler support for __int128 division is needed.

#define FS_THREADS 128
#define FS_NONE 0xffffffffu

struct fs_u128 {
    unsigned long long hi;
    unsigned long long lo;
};

// floor(s^2 / n), n != 0.
static __device__ __forceinline__ fs_u128 fs_score(unsigned long long s, unsigned int n) {
    const unsigned long long p_lo = s * s;
    const unsigned long long p_hi = __umul64hi(s, s);
    if (p_hi == 0) {
        // s < 2^32 (every realistic node): one 64-bit division is exact.
        fs_u128 r;
        r.hi = 0ull;
        r.lo = p_lo / n;
        return r;
    }
    const unsigned int limbs[4] = {
        (unsigned int)(p_hi >> 32), (unsigned int)p_hi, (unsigned int)(p_lo >> 32), (unsigned int)p_lo
    };
    unsigned long long rem = 0;
    unsigned int q[4];
    for (int k = 0; k < 4; ++k) {
        const unsigned long long cur = (rem << 32) | limbs[k];
        q[k] = (unsigned int)(cur / n);
        rem = cur % n;
    }
    fs_u128 r;
    r.hi = ((unsigned long long)q[0] << 32) | q[1];
    r.lo = ((unsigned long long)q[2] << 32) | q[3];
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
    __shared__ unsigned long long sh_sl[FS_THREADS];
    __shared__ unsigned int sh_n;
    __shared__ unsigned long long sh_s;

    const unsigned int tid = threadIdx.x;
    const unsigned int min_leaf = max(min_samples_leaf, 1u);
    const unsigned long long per_slot = (unsigned long long)features * max_bins * 3ull;

    for (unsigned int slot = blockIdx.x; slot < slot_count; slot += gridDim.x) {
        const unsigned int* h = hist + (unsigned long long)slot * per_slot;
        if (tid == 0) {
            unsigned int n = 0;
            unsigned long long s = 0;
            for (unsigned int b = 0; b < max_bins; ++b) {
                const unsigned int* c = h + (unsigned long long)b * 3ull;
                n += c[0];
                s += (unsigned long long)c[1] | ((unsigned long long)c[2] << 32);
            }
            sh_n = n;
            sh_s = s;
        }
        __syncthreads();
        const unsigned int n = sh_n;
        const unsigned long long s = sh_s;

        fs_u128 best_score = {0ull, 0ull};
        unsigned int best_feature = FS_NONE, best_bin = 0, best_nl = 0;
        unsigned long long best_sl = 0;
        if (n > 0) {
            for (unsigned int j = tid; j < features; j += blockDim.x) {
                if (mask_words != 0 &&
                    ((feature_mask[(unsigned long long)slot * mask_words + j / 32u] >> (j % 32u)) & 1u) == 0) {
                    continue;
                }
                const unsigned int* hj = h + (unsigned long long)j * max_bins * 3ull;
                unsigned int nl = 0;
                unsigned long long sl = 0;
                for (unsigned int b = 0; b + 1 < max_bins; ++b) {
                    const unsigned int* c = hj + (unsigned long long)b * 3ull;
                    nl += c[0];
                    sl += (unsigned long long)c[1] | ((unsigned long long)c[2] << 32);
                    const unsigned int nr = n - nl;
                    const unsigned long long sr = s - sl;
                    if (nl >= min_leaf && nr >= min_leaf) {
                        const fs_u128 sc = fs_add(fs_score(sl, nl), fs_score(sr, nr));
                        if (best_feature == FS_NONE || fs_greater(sc, best_score)) {
                            best_score = sc;
                            best_feature = j;
                            best_bin = b;
                            best_nl = nl;
                            best_sl = sl;
                        }
                    }
                }
            }
        }
        sh_hi[tid] = best_score.hi;
        sh_lo[tid] = best_score.lo;
        sh_feature[tid] = best_feature;
        sh_bin[tid] = best_bin;
        sh_nl[tid] = best_nl;
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
                    sh_sl[tid] = sh_sl[o];
                }
            }
            __syncthreads();
        }
        if (tid == 0) {
            unsigned int feature = FS_NONE, bin = 0, nl = 0;
            unsigned long long sl = 0;
            if (sh_feature[0] != FS_NONE) {
                const fs_u128 best = {sh_hi[0], sh_lo[0]};
                if (fs_greater(best, fs_score(s, max(n, 1u)))) {
                    feature = sh_feature[0];
                    bin = sh_bin[0];
                    nl = sh_nl[0];
                    sl = sh_sl[0];
                }
            }
            unsigned int* rec = splits + ((unsigned long long)slot_begin + slot) * 8ull;
            rec[0] = feature;
            rec[1] = bin;
            rec[2] = nl;
            rec[3] = (unsigned int)sl;
            rec[4] = (unsigned int)(sl >> 32);
            rec[5] = n;
            rec[6] = (unsigned int)s;
            rec[7] = (unsigned int)(s >> 32);
        }
        // The shared totals and reduction arrays are reused by the next slot.
        __syncthreads();
    }
}

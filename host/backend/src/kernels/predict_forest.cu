// predict-forest (CUDA twin of predict_forest.rs, `predict_forest_span`): walks trees for
// rows and sums the 64-bit leaf values in a wrapping 128-bit integer (two unsigned long
// long halves with an explicit carry). A walk that leaves the node array, names a feature
// out of range, steps to a child that is not after its parent (index <= the current node,
// so no walk can cycle), or exceeds max_depth + 1 steps adds nothing. The threshold test
// is an exact IEEE f32 `<=` (NaN goes right); NVRTC runs with --ftz=false.
// sums: 4 u32 words per row, least significant first.
//
// One launch does one span of a call: rows row_begin..row_end and trees
// tree_begin..tree_end. A span row's sum is set to the sum over the span's trees when
// tree_begin == 0 and added to (wrapping) when tree_begin > 0; rows outside the span are
// not touched. Work item i (grid-stride) is row row_begin + i % span_rows with the trees
// of group i / span_rows: tree_begin + g * group_trees up to group_trees trees, cut at
// tree_end. The host chooses group_trees so that few rows still fill the GPU, and says
// whether several groups share a row (`shared`):
//   shared == 0: one group per row; the item owns its row, starts from the stored sum
//                (tree_begin > 0) or zero, and stores the total.
//   shared != 0: each item adds its group's 128-bit partial to the row's sum with two
//                64-bit atomics (low half; high half plus the low half's carry). The host
//                zeroes the span's rows first when tree_begin == 0.
// Addition mod 2^128 does not depend on order, so either way the bytes equal the Rust
// reference's. row_end and tree_end are clamped to rows and tree_count.

extern "C" __global__ void predict_forest(
    unsigned int rows,
    unsigned int features,
    unsigned int tree_count,
    unsigned int node_count,
    unsigned int max_depth,
    unsigned int row_begin,
    unsigned int row_end,
    unsigned int tree_begin,
    unsigned int tree_end,
    unsigned int group_trees,
    unsigned int shared,
    const float* __restrict__ x,
    const unsigned int* __restrict__ nodes,
    const unsigned int* __restrict__ roots,
    unsigned int* __restrict__ sums)
{
    const unsigned int r_end = min(row_end, rows);
    const unsigned int t_end = min(tree_end, tree_count);
    if (row_begin >= r_end || group_trees == 0u) {
        return;
    }
    const unsigned long long span_rows = (unsigned long long)(r_end - row_begin);
    const unsigned long long span_trees = t_end > tree_begin ? (unsigned long long)(t_end - tree_begin) : 0ull;
    const unsigned long long groups = span_trees == 0ull ? 1ull : (span_trees + group_trees - 1ull) / group_trees;
    const unsigned long long items = span_rows * groups;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < items; i += stride) {
        const unsigned long long row = (unsigned long long)row_begin + i % span_rows;
        const unsigned long long t_first = (unsigned long long)tree_begin + (i / span_rows) * group_trees;
        const unsigned long long t_last = min(t_first + group_trees, (unsigned long long)t_end);
        const float* xs = x + row * features;
        unsigned int* out = sums + row * 4ull;
        unsigned long long lo = 0ull;
        unsigned long long hi = 0ull;
        if (shared == 0u && tree_begin > 0u) {
            lo = (unsigned long long)out[0] | ((unsigned long long)out[1] << 32);
            hi = (unsigned long long)out[2] | ((unsigned long long)out[3] << 32);
        }
        for (unsigned long long t = t_first; t < t_last; ++t) {
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
        if (shared == 0u) {
            out[0] = (unsigned int)lo;
            out[1] = (unsigned int)(lo >> 32);
            out[2] = (unsigned int)hi;
            out[3] = (unsigned int)(hi >> 32);
        } else if ((lo | hi) != 0ull) {
            // sums comes from cuMemAlloc[Async] (256-byte aligned) and a row is 16 bytes, so both
            // halves are 8-byte aligned; words 0-1 and 2-3 are the little-endian halves.
            unsigned long long* half = reinterpret_cast<unsigned long long*>(out);
            const unsigned long long old = atomicAdd(&half[0], lo);
            const unsigned long long carry = (old + lo < old) ? 1ull : 0ull;
            const unsigned long long add_hi = hi + carry;
            if (add_hi != 0ull) {
                atomicAdd(&half[1], add_hi);
            }
        }
    }
}

// `find-splits-rows`: WGSL twin of find_splits_rows.rs. The split records of
// build-histograms + find-splits for the batch's slots, without a global histogram.
//
// Entry points, run in this order by the host (host/wgpu/src/rows.rs):
//   count_entries   one invocation per (tree, row) entry: counts the entries of each slot
//                   into scan[0..slot_count] (the host cleared scan[0..=slot_count]).
//   scan_blocks     one workgroup per 256 words of one scan level: exclusive scan in place,
//                   block total to the next level (multi-level scan, any slot count).
//   add_offsets     one invocation per word of a level: adds its block's scanned total.
//   scatter_entries one invocation per entry: order[scan[s]++] = entry, so afterwards
//                   scan[s] is the end of slot s (and the start of slot s + 1).
//   largest_slot    one invocation per slot: the largest slot's entry count into
//                   scan[slot_count], which nothing reads after the scan (the host reads it
//                   back to plan the launches below).
//   split_small     one invocation per (slot, block of features), for slots of at most
//                   SMALL entries (deep levels): the slot's entries in registers, each
//                   distinct bin of each feature evaluated once with its prefix sums
//                   (O(features * m^2)).
//   split_slots     one workgroup per (slot, block of features), for slots of more than
//                   SMALL and at most wg_max entries: per feature a workgroup-memory
//                   histogram of the slot's entries, then the bins scanned in order exactly
//                   as SplitSearch does; the best (score, feature, bin) is reduced across
//                   the workgroup with SplitSearch's tie rule (lower feature, then lower bin).
//   merge_partials  one invocation per slot: folds the partial records of its blocks, in
//                   ascending order, into the slot's record (below).
// Every count and sum is a wrapping integer (32-bit counts, 64-bit sums from 32-bit
// atomics with carry, 128-bit scores in u32 limbs), so results never depend on order.
// A slot's entries are distinct rows of one tree, so its entry counts are the `entries`
// of build-histograms; a pure slot (min target == max target over feature 0's in-range
// bins) skips the search and writes a leaf.
//
// Work is indexed by workgroup: `base` is the first workgroup of this dispatch, `count`
// how many it has; a 2-D grid may hold a few more, which return at once.
//
// Blocks of features (host/wgpu/src/loops.rs): no invocation may loop for long, on any
// adapter. llvmpipe (Mesa's software Vulkan) silently ends all loops of an invocation once
// they have made 65535 passes together, and on a GPU one invocation walking every feature of
// a wide table serially is both slow (its slot gets no parallelism) and deaf to a cancel. So
// the host launches split_small and split_slots over a grid of (slot, block): block `blk`
// of a launch scans features j_begin + blk * j_per .. (at most j_end), as many as the loop
// budget allows, and writes a partial record (the 12-word record of its features alone) at
// blk * slot_count + k of the buffer bound as `splits`, which for these two kernels is the
// host's partials scratch (and p.slot_begin is 0). merge_partials then takes a slot's
// partials in ascending block order and keeps the earlier candidate unless a later one
// scores strictly higher (recomputing the kept score exactly from (nL, SL) and the slot's
// (n, S)), and adds the blocks' `varying` counts: exactly the result of one ascending scan
// over all features, whose tie rule prefers the lower feature. A launch that does not start
// at feature 0 (more blocks than the partials scratch holds) folds into the record the
// launch before wrote. Slots of more than wg_max entries are left to build-histograms +
// find-splits on one slot at a time.

struct Params {
    base: u32,
    count: u32,
    rows: u32,
    features: u32,
    max_bins: u32,
    words: u32,         // ceil(rows / 4)
    slot_begin: u32,    // first slot of this chunk (node-of value of local slot 0)
    slot_count: u32,    // slots in this chunk
    min_samples_leaf: u32,
    mask_words: u32,
    mask_slot: u32,     // local slot of the batch that this chunk's slot 0 is (for the mask)
    entries: u32,       // tree_count * rows (count/scatter), or entries grouped (split_slots)
    scan_off: u32,      // scan level: first word
    scan_len: u32,      // scan level: words
    sums_off: u32,      // next scan level's first word, or NONE (scan_blocks, add_offsets)
    j_per: u32,         // split_small, split_slots: features per block
    j_begin: u32,       // this launch's features, j_begin..j_end (merge_partials: fresh
    j_end: u32,         // record when j_begin is 0, else fold into the launch before's)
    wg_max: u32,        // split_slots: most entries of a slot it decides
    block_groups: u32,  // split_small, split_slots: workgroups of one block
    blocks: u32,        // merge_partials: partial records per slot in this launch
    m_min: u32,         // merge_partials: the slots it merges, by entry count m_min..=m_max
    m_max: u32,
    _pad: u32,
}

const NONE: u32 = 0xffffffffu;
const WG: u32 = 64u;
const BLOCK: u32 = 256u;
// Slots with at most this many entries are decided by one invocation (split_small).
const SMALL: u32 = 32u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bins: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<u32>;
@group(0) @binding(4) var<storage, read> node_of: array<u32>;
@group(0) @binding(5) var<storage, read> feature_mask: array<u32>;
@group(0) @binding(6) var<storage, read_write> splits: array<u32>;
@group(0) @binding(7) var<storage, read_write> scan: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read_write> order: array<u32>;
@group(0) @binding(9) var<storage, read> partials: array<u32>;

// mul_wide, square64, div_limb, score, valid and write_record come from
// split_score.wgsl (prepended).

// Bin of `row` for `feature` in the packed feature-major matrix.
fn bin_at(feature: u32, row: u32) -> u32 {
    return (bins[feature * p.words + row / 4u] >> ((row % 4u) * 8u)) & 0xffu;
}

// Local slot (0..slot_count) of entry i, or NONE when it is outside the chunk or has
// weight 0 (such entries add nothing to any count or sum).
fn local_slot(i: u32) -> u32 {
    let node = node_of[i];
    let s = node - p.slot_begin;
    if (node < p.slot_begin || s >= p.slot_count || weights[i] == 0u) {
        return NONE;
    }
    return s;
}

// ---- grouping entries by slot ----

@compute @workgroup_size(64)
fn count_entries(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= p.count) {
        return;
    }
    let i = (p.base + g) * WG + lid;
    if (i >= p.entries) {
        return;
    }
    let s = local_slot(i);
    if (s != NONE) {
        atomicAdd(&scan[s], 1u);
    }
}

var<workgroup> block_totals: array<u32, 64>;

@compute @workgroup_size(64)
fn scan_blocks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= p.count) {
        return;
    }
    let block = p.base + g;
    let first = block * BLOCK + lid * 4u;
    var v = vec4<u32>(0u);
    for (var t = 0u; t < 4u; t++) {
        if (first + t < p.scan_len) {
            v[t] = atomicLoad(&scan[p.scan_off + first + t]);
        }
    }
    block_totals[lid] = v.x + v.y + v.z + v.w;
    workgroupBarrier();
    var before = 0u;
    for (var t = 0u; t < lid; t++) {
        before += block_totals[t];
    }
    var run = before;
    for (var t = 0u; t < 4u; t++) {
        if (first + t < p.scan_len) {
            atomicStore(&scan[p.scan_off + first + t], run);
        }
        run += v[t];
    }
    if (lid == WG - 1u && p.sums_off != NONE) {
        atomicStore(&scan[p.sums_off + block], run);
    }
}

@compute @workgroup_size(64)
fn add_offsets(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= p.count) {
        return;
    }
    let k = (p.base + g) * WG + lid;
    if (k >= p.scan_len) {
        return;
    }
    let add = atomicLoad(&scan[p.sums_off + k / BLOCK]);
    atomicAdd(&scan[p.scan_off + k], add);
}

@compute @workgroup_size(64)
fn scatter_entries(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= p.count) {
        return;
    }
    let i = (p.base + g) * WG + lid;
    if (i >= p.entries) {
        return;
    }
    let s = local_slot(i);
    if (s != NONE) {
        let at = atomicAdd(&scan[s], 1u);
        order[at] = i;
    }
}

// The entries of local slot k are order[begin..end]: after scatter_entries, scan[k] is
// the end of slot k and scan[k - 1] its start.
fn slot_range(k: u32) -> vec2<u32> {
    let end = min(atomicLoad(&scan[k]), p.entries);
    var begin = 0u;
    if (k > 0u) {
        begin = min(atomicLoad(&scan[k - 1u]), end);
    }
    return vec2<u32>(begin, end);
}

// The largest slot's entry count, for the host's launch plan, into scan[slot_count] (the
// host cleared it).
@compute @workgroup_size(64)
fn largest_slot(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= p.count) {
        return;
    }
    let k = (p.base + g) * WG + lid;
    if (k >= p.slot_count) {
        return;
    }
    let range = slot_range(k);
    if (range.y > range.x) {
        atomicMax(&scan[p.slot_count], range.y - range.x);
    }
}

// Whether feature j is a candidate for local slot k of this chunk.
fn allowed(k: u32, j: u32) -> bool {
    if (p.mask_words == 0u) {
        return true;
    }
    let word = feature_mask[(p.mask_slot + k) * p.mask_words + j / 32u];
    return ((word >> (j % 32u)) & 1u) == 1u;
}

// Features blk-th block of this launch scans: j_begin + blk * j_per, at most j_per of them,
// up to j_end (the host launches blk < ceil((j_end - j_begin) / j_per), so none wraps).
fn block_features(blk: u32) -> vec2<u32> {
    let first = p.j_begin + blk * p.j_per;
    return vec2<u32>(first, first + min(p.j_per, p.j_end - first));
}

// ---- one invocation per small slot ----

@compute @workgroup_size(64)
fn split_small(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= p.count) {
        return;
    }
    let blk = (p.base + g) / p.block_groups;
    let k = (p.base + g) % p.block_groups * WG + lid;
    if (k >= p.slot_count) {
        return;
    }
    let features = block_features(blk);
    let range = slot_range(k);
    let m = range.y - range.x;
    if (m > SMALL) {
        return;
    }
    var e_row: array<u32, SMALL>;
    var e_w: array<u32, SMALL>;
    var e_v: array<vec2<u32>, SMALL>;
    var e_b: array<u32, SMALL>;
    // Totals over feature 0's in-range bins, as find-splits takes them.
    var n = 0u;
    var d = 0u;
    var s = vec2<u32>(0u);
    var lo = NONE;
    var hi = 0u;
    for (var t = 0u; t < m; t++) {
        let i = order[range.x + t];
        let row = i % p.rows;
        let y = targets[row];
        e_row[t] = row;
        e_w[t] = weights[i];
        e_v[t] = mul_wide(e_w[t], y);
        if (bin_at(0u, row) < p.max_bins) {
            n += e_w[t];
            d += 1u;
            s = add64(s, e_v[t]);
            lo = min(lo, y);
            hi = max(hi, y);
        }
    }
    let min_leaf = max(p.min_samples_leaf, 1u);
    let candidates = p.max_bins - 1u;
    var found = false;
    var top = vec4<u32>(0u);
    var top_j = 0u;
    var top_b = 0u;
    // The first non-empty bin after top_b in feature top_j, else max_bins - 1: the record
    // reports the middle of the gap between them (docs/algorithm.md §7).
    var top_c = 0u;
    var top_nl = 0u;
    var top_dl = 0u;
    var top_sl = vec2<u32>(0u);
    // Allowed features not constant in the slot (0 for a pure slot, which is not scanned).
    var varied = 0u;
    // A pure slot is a leaf whatever its candidates.
    if (lo < hi) {
        for (var j = features.x; j < features.y; j++) {
            if (!allowed(k, j)) {
                continue;
            }
            for (var t = 0u; t < m; t++) {
                e_b[t] = bin_at(j, e_row[t]);
            }
            var varies = false;
            // Bins in any order: the tie rule below makes the result the first maximum
            // in (feature, bin) order, as SplitSearch's ascending scan with strict >.
            for (var t = 0u; t < m; t++) {
                let b = e_b[t];
                if (b >= candidates) {
                    continue;
                }
                var first = true;
                for (var u = 0u; u < t; u++) {
                    if (e_b[u] == b) {
                        first = false;
                    }
                }
                if (!first) {
                    continue;
                }
                // Bin b holds entry t, so it is never empty (an empty bin would only
                // repeat the previous partition).
                var nl = 0u;
                var dl = 0u;
                var sl = vec2<u32>(0u);
                for (var u = 0u; u < m; u++) {
                    if (e_b[u] <= b) {
                        nl += e_w[u];
                        dl += 1u;
                        sl = add64(sl, e_v[u]);
                    }
                }
                // Rows on both sides, valid candidate or not: the feature varies (the
                // non-empty bins' prefixes are those SplitSearch's ascending scan tests).
                if (dl != 0u && dl < d) {
                    varies = true;
                }
                if (!valid(nl, dl, n, d, min_leaf)) {
                    continue;
                }
                let sc = add128(score(sl, nl), score(sub64(s, sl), n - nl));
                var better = !found || gt128(sc, top);
                if (found && all(sc == top)) {
                    better = j < top_j || (j == top_j && b < top_b);
                }
                if (better) {
                    var c = candidates;
                    for (var u = 0u; u < m; u++) {
                        if (e_b[u] > b && e_b[u] < c) {
                            c = e_b[u];
                        }
                    }
                    found = true;
                    top = sc;
                    top_j = j;
                    top_b = b;
                    top_c = c;
                    top_nl = nl;
                    top_dl = dl;
                    top_sl = sl;
                }
            }
            if (varies) {
                varied += 1u;
            }
        }
    }
    write_record(blk * p.slot_count + k, found, top_j, top_b + (top_c - 1u - top_b) / 2u, top_nl, top_dl, top_sl, n, d, s, varied, lo < hi);
}

// ---- one workgroup per slot ----

// 8608 bytes of workgroup memory in all, within WebGPU's 16 KiB default limit.
var<workgroup> h_count: array<atomic<u32>, 256>;
var<workgroup> h_entries: array<atomic<u32>, 256>;
var<workgroup> h_lo: array<atomic<u32>, 256>;
var<workgroup> h_hi: array<atomic<u32>, 256>;
var<workgroup> part_n: array<u32, 64>;
var<workgroup> part_d: array<u32, 64>;
var<workgroup> part_s: array<vec2<u32>, 64>;
// Per-thread target (min, max) of the totals.
var<workgroup> part_range: array<vec2<u32>, 64>;
// Per-thread first non-empty candidate bin of its own bins, or NONE.
var<workgroup> part_first: array<u32, 64>;
var<workgroup> group_n: array<u32, 8>;
var<workgroup> group_d: array<u32, 8>;
var<workgroup> group_s: array<vec2<u32>, 8>;
var<workgroup> total_n: u32;
var<workgroup> total_d: u32;
var<workgroup> total_s: vec2<u32>;
var<workgroup> total_impure: u32;
var<workgroup> slot_entries: u32;
// 1 + the last feature found varying (features are scanned in ascending order), and how
// many features were found varying: the first thread to see feature j vary counts it.
var<workgroup> last_varying: atomic<u32>;
var<workgroup> varying_total: atomic<u32>;
var<workgroup> best_score: array<vec4<u32>, 64>;
// (feature or NONE when the thread has no candidate, bin, left count, left sum lo)
var<workgroup> best_key: array<vec4<u32>, 64>;
// (left sum hi, left entries)
var<workgroup> best_sh: array<vec2<u32>, 64>;

@compute @workgroup_size(64)
fn split_slots(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= p.count) {
        return;
    }
    let blk = (p.base + g) / p.block_groups;
    let k = (p.base + g) % p.block_groups;
    let features = block_features(blk);
    let range = slot_range(k);
    let begin = range.x;
    let end = range.y;
    if (lid == 0u) {
        slot_entries = end - begin;
        atomicStore(&last_varying, 0u);
        atomicStore(&varying_total, 0u);
    }
    // Small slots are split_small's; those above wg_max are decided by build-histograms +
    // find-splits (host/wgpu/src/rows.rs).
    let m = workgroupUniformLoad(&slot_entries);
    if (m <= SMALL || m > p.wg_max) {
        return;
    }

    // Totals over feature 0's in-range bins, as find-splits takes them.
    var n = 0u;
    var d = 0u;
    var s = vec2<u32>(0u);
    var range_t = vec2<u32>(NONE, 0u);
    for (var e = begin + lid; e < end; e += WG) {
        let i = order[e];
        let row = i % p.rows;
        if (bin_at(0u, row) < p.max_bins) {
            let w = weights[i];
            let y = targets[row];
            n += w;
            d += 1u;
            s = add64(s, mul_wide(w, y));
            range_t = vec2<u32>(min(range_t.x, y), max(range_t.y, y));
        }
    }
    part_n[lid] = n;
    part_d[lid] = d;
    part_s[lid] = s;
    part_range[lid] = range_t;
    workgroupBarrier();
    if (lid == 0u) {
        for (var t = 1u; t < WG; t++) {
            n += part_n[t];
            d += part_d[t];
            s = add64(s, part_s[t]);
            range_t = vec2<u32>(min(range_t.x, part_range[t].x), max(range_t.y, part_range[t].y));
        }
        total_n = n;
        total_d = d;
        total_s = s;
        total_impure = select(0u, 1u, range_t.x < range_t.y);
    }
    // A pure slot is a leaf whatever its candidates: it skips the search.
    let impure = workgroupUniformLoad(&total_impure) != 0u;
    n = total_n;
    d = total_d;
    s = total_s;

    let min_leaf = max(p.min_samples_leaf, 1u);
    // Bins 0..max_bins-1 (exclusive) are candidates; each thread scans `per` of them.
    let candidates = p.max_bins - 1u;
    let per = (candidates + WG - 1u) / WG;
    let lo_bin = min(lid * per, candidates);
    let hi_bin = min(lo_bin + per, candidates);
    var have = false;
    var best = vec4<u32>(0u);
    var best_j = 0u;
    var best_b = 0u;
    var best_nl = 0u;
    var best_dl = 0u;
    var best_sl = vec2<u32>(0u);
    if (impure) {
        for (var j = features.x; j < features.y; j++) {
            if (!allowed(k, j)) {
                continue;
            }
            for (var b = lid; b < candidates; b += WG) {
                atomicStore(&h_count[b], 0u);
                atomicStore(&h_entries[b], 0u);
                atomicStore(&h_lo[b], 0u);
                atomicStore(&h_hi[b], 0u);
            }
            workgroupBarrier();
            for (var e = begin + lid; e < end; e += WG) {
                let i = order[e];
                let row = i % p.rows;
                let b = bin_at(j, row);
                if (b < candidates) {
                    let w = weights[i];
                    let v = mul_wide(w, targets[row]);
                    atomicAdd(&h_count[b], w);
                    atomicAdd(&h_entries[b], 1u);
                    let old = atomicAdd(&h_lo[b], v.x);
                    let high = v.y + select(0u, 1u, old + v.x < old);
                    if (high != 0u) {
                        atomicAdd(&h_hi[b], high);
                    }
                }
            }
            workgroupBarrier();
            // This thread's bins, summed; then the prefix of all lower threads' bins.
            var cn = 0u;
            var cd = 0u;
            var cs = vec2<u32>(0u);
            var first_bin = NONE;
            for (var b = lo_bin; b < hi_bin; b++) {
                let c = atomicLoad(&h_count[b]);
                let e = atomicLoad(&h_entries[b]);
                let v = vec2<u32>(atomicLoad(&h_lo[b]), atomicLoad(&h_hi[b]));
                cn += c;
                cd += e;
                cs = add64(cs, v);
                if (first_bin == NONE && (c | e | v.x | v.y) != 0u) {
                    first_bin = b;
                }
            }
            part_first[lid] = first_bin;
            part_n[lid] = cn;
            part_d[lid] = cd;
            part_s[lid] = cs;
            workgroupBarrier();
            // Two-level prefix: sums of 8 threads' bins, then within the group of 8.
            if (lid < 8u) {
                var gn = 0u;
                var gd = 0u;
                var gs = vec2<u32>(0u);
                for (var t = lid * 8u; t < lid * 8u + 8u; t++) {
                    gn += part_n[t];
                    gd += part_d[t];
                    gs = add64(gs, part_s[t]);
                }
                group_n[lid] = gn;
                group_d[lid] = gd;
                group_s[lid] = gs;
            }
            workgroupBarrier();
            var nl = 0u;
            var dl = 0u;
            var sl = vec2<u32>(0u);
            for (var t = 0u; t < lid / 8u; t++) {
                nl += group_n[t];
                dl += group_d[t];
                sl = add64(sl, group_s[t]);
            }
            for (var t = lid / 8u * 8u; t < lid; t++) {
                nl += part_n[t];
                dl += part_d[t];
                sl = add64(sl, part_s[t]);
            }
            // best_b is still the candidate's last non-empty left bin, whose next non-empty
            // bin is not seen yet (SplitSearch's `pending`); once it is, best_b is moved to
            // the middle of the gap (docs/algorithm.md §7). Moving it keeps the order of
            // bins within a feature, so the reduction's tie rule is unchanged.
            var pending = false;
            for (var b = lo_bin; b < hi_bin; b++) {
                let c = atomicLoad(&h_count[b]);
                let e = atomicLoad(&h_entries[b]);
                let v = vec2<u32>(atomicLoad(&h_lo[b]), atomicLoad(&h_hi[b]));
                // An empty bin repeats the previous partition, whose equal score never
                // wins the strict comparison (as in SplitSearch).
                if (c == 0u && e == 0u && v.x == 0u && v.y == 0u) {
                    continue;
                }
                if (pending) {
                    best_b += (b - 1u - best_b) / 2u;
                    pending = false;
                }
                nl += c;
                dl += e;
                sl = add64(sl, v);
                // Rows on both sides, valid candidate or not: feature j varies. Feature
                // j - 1's last test came before this feature's barriers.
                if (dl != 0u && dl < d) {
                    if (atomicMax(&last_varying, j + 1u) < j + 1u) {
                        atomicAdd(&varying_total, 1u);
                    }
                }
                if (valid(nl, dl, n, d, min_leaf)) {
                    let sc = add128(score(sl, nl), score(sub64(s, sl), n - nl));
                    if (!have || gt128(sc, best)) {
                        have = true;
                        best = sc;
                        best_j = j;
                        best_b = b;
                        best_nl = nl;
                        best_dl = dl;
                        best_sl = sl;
                        pending = true;
                    }
                }
            }
            // The next non-empty bin lies in a later thread's bins, else it is max_bins - 1.
            if (pending) {
                var c = candidates;
                for (var t = lid + 1u; t < WG; t++) {
                    if (part_first[t] != NONE) {
                        c = part_first[t];
                        break;
                    }
                }
                best_b += (c - 1u - best_b) / 2u;
            }
            // The histogram and partial sums are reused by the next feature.
            workgroupBarrier();
        }
    }

    best_score[lid] = best;
    best_key[lid] = vec4<u32>(select(NONE, best_j, have), best_b, best_nl, best_sl.x);
    best_sh[lid] = vec2<u32>(best_sl.y, best_dl);
    workgroupBarrier();
    if (lid != 0u) {
        return;
    }
    // Each thread's best is the first maximum of its own candidates in (feature, bin)
    // order; the first maximum over all of them is the highest score, ties to the lower
    // feature, then the lower bin.
    var found = false;
    var top = vec4<u32>(0u);
    var key = vec4<u32>(NONE, 0u, 0u, 0u);
    var key_sh = vec2<u32>(0u);
    for (var t = 0u; t < WG; t++) {
        let kt = best_key[t];
        if (kt.x == NONE) {
            continue;
        }
        let st = best_score[t];
        var better = !found || gt128(st, top);
        if (found && all(st == top)) {
            better = kt.x < key.x || (kt.x == key.x && kt.y < key.y);
        }
        if (better) {
            found = true;
            top = st;
            key = kt;
            key_sh = best_sh[t];
        }
    }
    write_record(blk * p.slot_count + k, found, key.x, key.y, key.z, key_sh.y, vec2<u32>(key.w, key_sh.x), n, d, s, atomicLoad(&varying_total), impure);
}

// ---- folding the blocks' partial records ----

@compute @workgroup_size(64)
fn merge_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    if (g >= p.count) {
        return;
    }
    let k = (p.base + g) * WG + lid;
    if (k >= p.slot_count) {
        return;
    }
    // Only the slots whose partials the kernel before wrote.
    let range = slot_range(k);
    let m = range.y - range.x;
    if (m < p.m_min || m > p.m_max) {
        return;
    }
    let out = (p.slot_begin + k) * 12u;
    var first = 0u;
    if (p.j_begin == 0u) {
        for (var w = 0u; w < 12u; w++) {
            splits[out + w] = partials[k * 12u + w];
        }
        first = 1u;
    }
    // Every partial of a slot holds the same totals (words 6-9, 11).
    let n = splits[out + 6u];
    let s = vec2<u32>(splits[out + 8u], splits[out + 9u]);
    var have = splits[out] != NONE;
    var kept = vec4<u32>(0u);
    if (have) {
        let nl = splits[out + 2u];
        let sl = vec2<u32>(splits[out + 4u], splits[out + 5u]);
        kept = add128(score(sl, nl), score(sub64(s, sl), n - nl));
    }
    var varied = splits[out + 10u];
    for (var b = first; b < p.blocks; b++) {
        let q = (b * p.slot_count + k) * 12u;
        varied += partials[q + 10u];
        if (partials[q] == NONE) {
            continue;
        }
        let nl = partials[q + 2u];
        let sl = vec2<u32>(partials[q + 4u], partials[q + 5u]);
        let sc = add128(score(sl, nl), score(sub64(s, sl), n - nl));
        if (!have || gt128(sc, kept)) {
            have = true;
            kept = sc;
            for (var w = 0u; w < 6u; w++) {
                splits[out + w] = partials[q + w];
            }
        }
    }
    splits[out + 10u] = varied;
}

// `find-splits` (docs/algorithm.md §7): WGSL twin of find_splits.rs.
// One invocation per slot of the batch. Cells are 6 words (count, entries, sum lo, sum hi,
// min target, max target); scores are exact wrapping 128-bit integers held in four u32
// limbs (x = least significant), built with 32-bit arithmetic only.
//
// A launch scans features j_begin..j_end. Where one launch would loop too long for
// llvmpipe (which silently ends an invocation's loops after 65535 passes in all,
// host/wgpu/src/loops.rs), the host launches ascending blocks of features: the first
// (j_begin 0) writes the record; each later one (`merging`) takes the slot's totals and
// purity from the record and keeps it unless its own best scores higher (the record's
// features are lower, so they win ties), adding its `varying` count (finish_record in
// split_score.wgsl). Feature j's cells are column j - hist_j0 of hist_cols per slot, and
// slot k's mask row is mask_slot + k (0, features and 0 for the kernel's own histogram;
// the wgpu backend also runs it on a histogram of one slot's block of features).

struct Params {
    base: u32,
    count: u32,
    features: u32,
    max_bins: u32,
    slot_begin: u32,
    min_samples_leaf: u32,
    mask_words: u32,
    mask_slot: u32,     // mask row of local slot 0
    j_begin: u32,       // features of this launch: j_begin..j_end
    j_end: u32,
    hist_j0: u32,       // feature of the histogram's column 0
    hist_cols: u32,     // columns (features) per slot in the histogram
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> hist: array<u32>;
@group(0) @binding(2) var<storage, read> feature_mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> splits: array<u32>;

// mul_wide, square64, div_limb, score, valid, record_totals and finish_record come from
// split_score.wgsl (prepended).

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let slot = p.base + local;
    let h0 = slot * p.hist_cols * p.max_bins * 6u;
    // Totals over feature 0's in-range bins (from the record in a merge launch, whose
    // histogram may not hold feature 0).
    var n = 0u;
    var d = 0u;
    var s = vec2<u32>(0u, 0u);
    var impure = false;
    if (merging) {
        let t = record_totals(slot);
        n = t.n;
        d = t.d;
        s = t.s;
        impure = t.impure;
    } else {
        var lo = NONE;
        var hi = 0u;
        for (var b = 0u; b < p.max_bins; b++) {
            let at = h0 + b * 6u;
            n += hist[at];
            d += hist[at + 1u];
            s = add64(s, vec2<u32>(hist[at + 2u], hist[at + 3u]));
            lo = min(lo, hist[at + 4u]);
            hi = max(hi, hist[at + 5u]);
        }
        impure = lo < hi;
    }
    let min_leaf = max(p.min_samples_leaf, 1u);
    var have = false;
    var best = vec4<u32>(0u);
    var best_j = 0u;
    var best_b = 0u;
    var best_nl = 0u;
    var best_dl = 0u;
    var best_sl = vec2<u32>(0u, 0u);
    // best_b is still the candidate's last non-empty left bin, whose next non-empty bin in
    // this feature is not seen yet (SplitSearch's `pending`); once it is, best_b is moved to
    // the middle of the gap (docs/algorithm.md §7).
    var pending = false;
    // Allowed features not constant in the slot (0 for a pure slot, which is not scanned).
    var varied = 0u; // `varying` is a WGSL keyword
    // A pure slot is a leaf whatever its candidates.
    if (impure) {
        for (var j = p.j_begin; j < p.j_end; j++) {
            if (p.mask_words != 0u) {
                let word = feature_mask[(p.mask_slot + slot) * p.mask_words + j / 32u];
                if (((word >> (j % 32u)) & 1u) != 1u) {
                    continue;
                }
            }
            var nl = 0u;
            var dl = 0u;
            var sl = vec2<u32>(0u, 0u);
            var varies = false;
            for (var b = 0u; b < p.max_bins - 1u; b++) {
                let at = h0 + ((j - p.hist_j0) * p.max_bins + b) * 6u;
                if (pending && (hist[at] | hist[at + 1u] | hist[at + 2u] | hist[at + 3u]) != 0u) {
                    best_b += (b - 1u - best_b) / 2u;
                    pending = false;
                }
                nl += hist[at];
                dl += hist[at + 1u];
                sl = add64(sl, vec2<u32>(hist[at + 2u], hist[at + 3u]));
                // Rows on both sides, valid candidate or not (an empty bin leaves dl as
                // it was, so testing it too changes nothing).
                if (dl != 0u && dl < d) {
                    varies = true;
                }
                let nr = n - nl;
                let sr = sub64(s, sl);
                if (valid(nl, dl, n, d, min_leaf)) {
                    let sc = add128(score(sl, nl), score(sr, nr));
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
            // No non-empty bin after the best candidate's below max_bins - 1.
            if (pending) {
                best_b += (p.max_bins - 2u - best_b) / 2u;
                pending = false;
            }
            if (varies) {
                varied += 1u;
            }
        }
    }
    finish_record(slot, have, best, best_j, best_b, best_nl, best_dl, best_sl, n, d, s, varied, impure);
}

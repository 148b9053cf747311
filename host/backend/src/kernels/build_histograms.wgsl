// `build-histograms` (docs/algorithm.md §6): WGSL twin of build_histograms.rs.
// Cells are 6 words: (count, entries, sum lo, sum hi, min target, max target).
// `clear_cells` (one invocation per cell) writes the empty cell (0, 0, 0, 0, NONE, 0);
// then `main`, one invocation per (tree, row) entry, adds its weight, 1, weight * target
// and its target's min / max to every feature's bin. The 64-bit sums are built from
// 32-bit atomics with an explicit carry, so they are exact (mod 2^64) in any order.
// A `main` launch does features j_begin..j_end only (the host launches blocks of features
// where llvmpipe's limit on one invocation's loop iterations needs it, host/wgpu/src/loops.rs);
// feature j's cells are column j - hist_j0 of hist_cols per slot (0 and features for the
// kernel's own histogram; the wgpu backend also builds one slot's block of features).

struct Params {
    base: u32,
    count: u32,
    rows: u32,
    features: u32,
    max_bins: u32,
    words: u32,     // ceil(rows / 4)
    slot_begin: u32,
    slot_count: u32,
    j_begin: u32,   // features of this launch: j_begin..j_end
    j_end: u32,
    hist_j0: u32,   // feature of the histogram's column 0
    hist_cols: u32, // columns (features) per slot in the histogram
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bins: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<u32>;
@group(0) @binding(4) var<storage, read> node_of: array<u32>;
@group(0) @binding(5) var<storage, read_write> hist: array<atomic<u32>>;

// The 64-bit product a * b as (low, high).
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let lo = (p00 & 0xffffu) | (mid << 16u);
    let hi = a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(lo, hi);
}

const NONE: u32 = 0xffffffffu;

// Empty cells: `count` is the number of cells, `base` the first of this dispatch.
@compute @workgroup_size(64)
fn clear_cells(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let at = (p.base + local) * 6u;
    atomicStore(&hist[at], 0u);
    atomicStore(&hist[at + 1u], 0u);
    atomicStore(&hist[at + 2u], 0u);
    atomicStore(&hist[at + 3u], 0u);
    atomicStore(&hist[at + 4u], NONE);
    atomicStore(&hist[at + 5u], 0u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let i = p.base + local;
    let node = node_of[i];
    let w = weights[i];
    if (node < p.slot_begin) {
        return;
    }
    let s = node - p.slot_begin;
    if (s >= p.slot_count || w == 0u) {
        return;
    }
    let row = i % p.rows;
    let t = targets[row];
    let v = mul_wide(w, t);
    for (var j = p.j_begin; j < p.j_end; j++) {
        let b = (bins[j * p.words + row / 4u] >> ((row % 4u) * 8u)) & 0xffu;
        if (b < p.max_bins) {
            let at = ((s * p.hist_cols + (j - p.hist_j0)) * p.max_bins + b) * 6u;
            atomicAdd(&hist[at], w);
            atomicAdd(&hist[at + 1u], 1u);
            let old = atomicAdd(&hist[at + 2u], v.x);
            var carry = 0u;
            if (old + v.x < old) {
                carry = 1u;
            }
            // v.y <= 0xfffffffe (the product of two u32s), so the carry never wraps it.
            let high = v.y + carry;
            if (high != 0u) {
                atomicAdd(&hist[at + 3u], high);
            }
            atomicMin(&hist[at + 4u], t);
            atomicMax(&hist[at + 5u], t);
        }
    }
}

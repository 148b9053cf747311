// `bin-features` (docs/algorithm.md §4): WGSL twin of bin_features.rs.
// One invocation per output word of `bins` (4 rows of one feature). Floats are compared
// through their bit patterns, so flushing of subnormals by the device cannot change a bin.

struct Params {
    base: u32,      // first output word of this dispatch
    count: u32,     // output words in this dispatch
    rows: u32,
    features: u32,
    max_bins: u32,
    words: u32,     // ceil(rows / 4)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> edges: array<u32>;
@group(0) @binding(3) var<storage, read_write> bins: array<u32>;

// is_nan, order_key and f32_lt come from float_order.wgsl (prepended).

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let index = p.base + local;
    let feature = index / p.words;
    let w = index % p.words;
    let n_edges = p.max_bins - 1u;
    let first_edge = feature * n_edges;
    var packed = 0u;
    for (var lane = 0u; lane < 4u; lane++) {
        let row = w * 4u + lane;
        if (row < p.rows) {
            let v = x[row * p.features + feature];
            // Number of edges strictly below v.
            var bin = 0u;
            for (var e = 0u; e < n_edges; e++) {
                if (f32_lt(edges[first_edge + e], v)) {
                    bin++;
                }
            }
            packed |= min(bin, 255u) << (lane * 8u);
        }
    }
    bins[index] = packed;
}

// `predict-forest` (docs/algorithm.md §9): WGSL twin of predict_forest.rs.
// One invocation per row; the 64-bit sum is accumulated in two u32 words with a carry.
// Thresholds are compared through bit patterns, so subnormal flushing changes nothing.

struct Params {
    base: u32,
    count: u32,
    features: u32,
    tree_count: u32,
    node_count: u32,
    max_depth: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> nodes: array<u32>;
@group(0) @binding(3) var<storage, read> roots: array<u32>;
@group(0) @binding(4) var<storage, read_write> sums: array<u32>;

// is_nan, order_key and f32_le come from float_order.wgsl (prepended).

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let row = p.base + local;
    var lo = 0u;
    var hi = 0u;
    for (var t = 0u; t < p.tree_count; t++) {
        var node = roots[t];
        for (var step = 0u; step <= p.max_depth; step++) {
            if (node >= p.node_count) {
                break;
            }
            let at = node * 4u;
            let feature = nodes[at];
            if (feature == NONE) {
                let v = nodes[at + 1u];
                let sum = lo + v;
                hi += select(0u, 1u, sum < lo);
                lo = sum;
                break;
            }
            if (feature >= p.features) {
                break;
            }
            if (f32_le(x[row * p.features + feature], nodes[at + 1u])) {
                node = nodes[at + 2u];
            } else {
                node = nodes[at + 3u];
            }
        }
    }
    sums[row * 2u] = lo;
    sums[row * 2u + 1u] = hi;
}

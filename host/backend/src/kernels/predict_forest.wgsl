// `predict-forest` (docs/algorithm.md §9): WGSL twin of predict_forest.rs
// (`predict_forest_span`). One launch does rows row_begin..row_end and trees
// tree_begin..tree_end only; one invocation per row of the span. The wrapping 128-bit sum of
// 64-bit leaf values is accumulated in four u32 words with explicit carries, starting from
// zero when tree_begin == 0 and from the row's stored sum otherwise. A walk stops, adding
// nothing, at an index >= node count, a feature >= features, a child not after its parent,
// or after max_depth + 1 steps.
// Thresholds are compared through bit patterns, so subnormal flushing changes nothing.
//
// `walk_part` is for walks longer than one launch may take on llvmpipe, which silently ends
// an invocation's loops after 65535 passes in all (host/wgpu/src/loops.rs): one tree
// (tree_begin), one invocation per row, at most `steps` steps of the walk, resumed from the
// node `walk` holds for the row (or the tree's root when `resume` is 0) and left there for
// the next launch (NONE once the walk has ended). A leaf's value is added to the row's sum,
// which the host has set before (`main` over no tree, when the span starts at tree 0).

struct Params {
    base: u32,          // first row of this dispatch, relative to row_begin
    count: u32,         // rows in this dispatch
    features: u32,
    node_count: u32,
    max_depth: u32,
    row_begin: u32,     // the span: rows row_begin..row_end, trees tree_begin..tree_end
    row_end: u32,
    tree_begin: u32,
    tree_end: u32,
    steps: u32,         // walk_part: steps of this launch
    resume: u32,        // walk_part: 0 starts at the tree's root, else at walk[row]
    _pad0: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> nodes: array<u32>;
@group(0) @binding(3) var<storage, read> roots: array<u32>;
@group(0) @binding(4) var<storage, read_write> sums: array<u32>;
@group(0) @binding(5) var<storage, read_write> walk: array<u32>;

// is_nan, order_key and f32_le come from float_order.wgsl (prepended).

// a + b + carry_in on u32: (sum, carry out), carry out in {0, 1}.
fn add_carry(a: u32, b: u32, carry_in: u32) -> vec2<u32> {
    let s = a + b;
    let s2 = s + carry_in;
    return vec2<u32>(s2, select(0u, 1u, s < a) + select(0u, 1u, s2 < s));
}

// Wrapping 128-bit `total + (hi << 32 | lo)`, least significant word in x.
fn add_leaf(total: vec4<u32>, lo: u32, hi: u32) -> vec4<u32> {
    let w0 = add_carry(total.x, lo, 0u);
    let w1 = add_carry(total.y, hi, w0.y);
    let w2 = add_carry(total.z, 0u, w1.y);
    let w3 = add_carry(total.w, 0u, w2.y);
    return vec4<u32>(w0.x, w1.x, w2.x, w3.x);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let row = p.row_begin + p.base + local;
    if (row >= p.row_end) {
        return;
    }
    var total = vec4<u32>(0u, 0u, 0u, 0u);
    if (p.tree_begin > 0u) {
        total = vec4<u32>(sums[row * 4u], sums[row * 4u + 1u], sums[row * 4u + 2u], sums[row * 4u + 3u]);
    }
    for (var t = p.tree_begin; t < p.tree_end; t++) {
        var node = roots[t];
        for (var step = 0u; step <= p.max_depth; step++) {
            if (node >= p.node_count) {
                break;
            }
            let at = node * 4u;
            let feature = nodes[at];
            if (feature == NONE) {
                total = add_leaf(total, nodes[at + 1u], nodes[at + 2u]);
                break;
            }
            if (feature >= p.features) {
                break;
            }
            var next = nodes[at + 3u];
            if (f32_le(x[row * p.features + feature], nodes[at + 1u])) {
                next = nodes[at + 2u];
            }
            // Children come after their parent, so no walk can cycle.
            if (next <= node) {
                break;
            }
            node = next;
        }
    }
    sums[row * 4u] = total.x;
    sums[row * 4u + 1u] = total.y;
    sums[row * 4u + 2u] = total.z;
    sums[row * 4u + 3u] = total.w;
}

@compute @workgroup_size(64)
fn walk_part(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let k = p.base + local;
    let row = p.row_begin + k;
    if (row >= p.row_end) {
        return;
    }
    var node = roots[p.tree_begin];
    if (p.resume != 0u) {
        node = walk[k];
    }
    // The loop as main's walk, with NONE for a walk that has ended.
    for (var step = 0u; step < p.steps && node != NONE; step++) {
        if (node >= p.node_count) {
            node = NONE;
            break;
        }
        let at = node * 4u;
        let feature = nodes[at];
        if (feature == NONE) {
            let total = vec4<u32>(sums[row * 4u], sums[row * 4u + 1u], sums[row * 4u + 2u], sums[row * 4u + 3u]);
            let sum = add_leaf(total, nodes[at + 1u], nodes[at + 2u]);
            sums[row * 4u] = sum.x;
            sums[row * 4u + 1u] = sum.y;
            sums[row * 4u + 2u] = sum.z;
            sums[row * 4u + 3u] = sum.w;
            node = NONE;
            break;
        }
        if (feature >= p.features) {
            node = NONE;
            break;
        }
        var next = nodes[at + 3u];
        if (f32_le(x[row * p.features + feature], nodes[at + 1u])) {
            next = nodes[at + 2u];
        }
        if (next <= node) {
            node = NONE;
            break;
        }
        node = next;
    }
    walk[k] = node;
}

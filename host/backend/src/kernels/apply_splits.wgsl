// `apply-splits` (docs/algorithm.md §8): WGSL twin of apply_splits.rs.
// One invocation per (tree, row) entry of `node_of`.

struct Params {
    base: u32,
    count: u32,
    rows: u32,
    features: u32,
    slot_count: u32,
    words: u32,     // ceil(rows / 4)
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bins: array<u32>;
@group(0) @binding(2) var<storage, read> splits: array<u32>;
@group(0) @binding(3) var<storage, read> next_slot: array<u32>;
@group(0) @binding(4) var<storage, read_write> node_of: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let i = p.base + local;
    let s = node_of[i];
    if (s >= p.slot_count) {
        node_of[i] = NONE;
        return;
    }
    // Split records are 12 words; feature and bin are words 0 and 1.
    let feature = splits[s * 12u];
    if (feature >= p.features) {
        node_of[i] = NONE;
        return;
    }
    let row = i % p.rows;
    let b = (bins[feature * p.words + row / 4u] >> ((row % 4u) * 8u)) & 0xffu;
    let side = select(0u, 1u, b > splits[s * 12u + 1u]);
    node_of[i] = next_slot[s * 2u + side];
}

// `bootstrap` (docs/algorithm.md §3): WGSL twin of bootstrap.rs.
// The host clears `weights[..tree_count*rows]`, then runs `draw` (one invocation per draw
// index and block of `tree_chunk` trees, looping over the block's trees; atomic increments
// commute, so the counts are exact), then `mark` (one invocation per (tree, row)).
// `tree_chunk` bounds one invocation's loop: all trees on a hardware adapter, fewer on
// llvmpipe, which silently ends an invocation's loops after 65535 passes in all
// (host/wgpu/src/loops.rs).

struct Params {
    base: u32,
    count: u32,
    seed_lo: u32,
    seed_hi: u32,
    rows: u32,
    tree_begin: u32,
    tree_count: u32,
    draws: u32,
    tree_chunk: u32,    // trees per `draw` invocation (at least 1)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> weights: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read_write> node_of: array<u32>;

fn mix32(x0: u32) -> u32 {
    var x = x0;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// High word of the 64-bit product a * b.
fn mulhi(a: u32, b: u32) -> u32 {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

fn linear(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn draw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = linear(wid, nwg, lid);
    if (local >= p.count) {
        return;
    }
    // Invocation i draws d = i % draws for the trees of block i / draws (the host
    // dispatches draws * ceil(tree_count / tree_chunk) < 2^32 invocations).
    let i = p.base + local;
    let d = i % p.draws;
    let first = (i / p.draws) * p.tree_chunk;
    let end = first + min(p.tree_chunk, p.tree_count - first);
    for (var t = first; t < end; t++) {
        // key([seed_lo, seed_hi, 1, tree_begin + t, d])
        var h = 0x243f6a88u;
        h = mix32(h ^ p.seed_lo);
        h = mix32(h ^ p.seed_hi);
        h = mix32(h ^ 1u);
        h = mix32(h ^ (p.tree_begin + t));
        h = mix32(h ^ d);
        let row = mulhi(h, p.rows);
        atomicAdd(&weights[t * p.rows + row], 1u);
    }
}

@compute @workgroup_size(64)
fn mark(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = linear(wid, nwg, lid);
    if (local >= p.count) {
        return;
    }
    let i = p.base + local;
    if (atomicLoad(&weights[i]) > 0u) {
        node_of[i] = i / p.rows;
    } else {
        node_of[i] = NONE;
    }
}

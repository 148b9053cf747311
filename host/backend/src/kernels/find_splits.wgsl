// `find-splits` (docs/algorithm.md §7): WGSL twin of find_splits.rs.
// One invocation per slot of the batch. Scores are exact wrapping 128-bit integers held in
// four u32 limbs (x = least significant), built with 32-bit arithmetic only.

struct Params {
    base: u32,
    count: u32,
    features: u32,
    max_bins: u32,
    slot_begin: u32,
    min_samples_leaf: u32,
    mask_words: u32,
    _pad: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> hist: array<u32>;
@group(0) @binding(2) var<storage, read> feature_mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> splits: array<u32>;

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

// Wrapping 64-bit addition and subtraction on (low, high).
fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

// a + b + carry_in for one limb: (sum, carry out).
fn adc(a: u32, b: u32, carry_in: u32) -> vec2<u32> {
    let s = a + b;
    let s2 = s + carry_in;
    return vec2<u32>(s2, select(0u, 1u, s < a) + select(0u, 1u, s2 < s));
}

// Wrapping 128-bit addition.
fn add128(a: vec4<u32>, b: vec4<u32>) -> vec4<u32> {
    let l0 = adc(a.x, b.x, 0u);
    let l1 = adc(a.y, b.y, l0.y);
    let l2 = adc(a.z, b.z, l1.y);
    let l3 = adc(a.w, b.w, l2.y);
    return vec4<u32>(l0.x, l1.x, l2.x, l3.x);
}

// a > b, unsigned 128-bit.
fn gt128(a: vec4<u32>, b: vec4<u32>) -> bool {
    if (a.w != b.w) {
        return a.w > b.w;
    }
    if (a.z != b.z) {
        return a.z > b.z;
    }
    if (a.y != b.y) {
        return a.y > b.y;
    }
    return a.x > b.x;
}

// The full 128-bit square of a 64-bit value.
fn square64(s: vec2<u32>) -> vec4<u32> {
    let p00 = mul_wide(s.x, s.x);
    let p01 = mul_wide(s.x, s.y);
    let p11 = mul_wide(s.y, s.y);
    var acc = vec4<u32>(p00.x, p00.y, p11.x, p11.y);
    let cross = vec4<u32>(0u, p01.x, p01.y, 0u);
    acc = add128(acc, cross);
    acc = add128(acc, cross);
    return acc;
}

// One limb of long division by n: ((remainder, limb) / n) as (quotient limb, new remainder),
// remainder < n on entry. Restoring binary division; `top` keeps the 33rd bit.
fn div_limb(remainder: u32, limb: u32, n: u32) -> vec2<u32> {
    if (remainder == 0u && limb < n) {
        return vec2<u32>(0u, limb);
    }
    var r = remainder;
    var q = 0u;
    for (var bit = 31i; bit >= 0i; bit--) {
        let top = r >> 31u;
        r = (r << 1u) | ((limb >> u32(bit)) & 1u);
        if (top == 1u || r >= n) {
            r -= n;
            q |= 1u << u32(bit);
        }
    }
    return vec2<u32>(q, r);
}

// floor(s^2 / n) as 128 bits; n must be non-zero.
fn score(s: vec2<u32>, n: u32) -> vec4<u32> {
    let sq = square64(s);
    let q3 = div_limb(0u, sq.w, n);
    let q2 = div_limb(q3.y, sq.z, n);
    let q1 = div_limb(q2.y, sq.y, n);
    let q0 = div_limb(q1.y, sq.x, n);
    return vec4<u32>(q0.x, q1.x, q2.x, q3.x);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) {
        return;
    }
    let slot = p.base + local;
    let h0 = slot * p.features * p.max_bins * 3u;
    var n = 0u;
    var s = vec2<u32>(0u, 0u);
    for (var b = 0u; b < p.max_bins; b++) {
        let at = h0 + b * 3u;
        n += hist[at];
        s = add64(s, vec2<u32>(hist[at + 1u], hist[at + 2u]));
    }
    let min_leaf = max(p.min_samples_leaf, 1u);
    var have = false;
    var best = vec4<u32>(0u);
    var best_j = 0u;
    var best_b = 0u;
    var best_nl = 0u;
    var best_sl = vec2<u32>(0u, 0u);
    if (n > 0u) {
        for (var j = 0u; j < p.features; j++) {
            if (p.mask_words != 0u) {
                let word = feature_mask[slot * p.mask_words + j / 32u];
                if (((word >> (j % 32u)) & 1u) != 1u) {
                    continue;
                }
            }
            var nl = 0u;
            var sl = vec2<u32>(0u, 0u);
            for (var b = 0u; b < p.max_bins - 1u; b++) {
                let at = h0 + (j * p.max_bins + b) * 3u;
                nl += hist[at];
                sl = add64(sl, vec2<u32>(hist[at + 1u], hist[at + 2u]));
                let nr = n - nl;
                let sr = sub64(s, sl);
                if (nl >= min_leaf && nr >= min_leaf) {
                    let sc = add128(score(sl, nl), score(sr, nr));
                    if (!have || gt128(sc, best)) {
                        have = true;
                        best = sc;
                        best_j = j;
                        best_b = b;
                        best_nl = nl;
                        best_sl = sl;
                    }
                }
            }
        }
    }
    let out = (p.slot_begin + slot) * 8u;
    if (have && gt128(best, score(s, max(n, 1u)))) {
        splits[out] = best_j;
        splits[out + 1u] = best_b;
        splits[out + 2u] = best_nl;
        splits[out + 3u] = best_sl.x;
        splits[out + 4u] = best_sl.y;
    } else {
        splits[out] = NONE;
        splits[out + 1u] = 0u;
        splits[out + 2u] = 0u;
        splits[out + 3u] = 0u;
        splits[out + 4u] = 0u;
    }
    splits[out + 5u] = n;
    splits[out + 6u] = s.x;
    splits[out + 7u] = s.y;
}

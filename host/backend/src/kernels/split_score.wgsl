// Exact 128-bit split scores from u32 limbs (docs/algorithm.md §7), shared by
// find_splits.wgsl and find_splits_rows.wgsl: the backend prepends this file to both.
// Exact for any sum below 2^64: s^2 < 2^128 and floor(s^2 / n) fits four limbs.
// (div_limb's loop has a constant trip count: Mesa unrolls it, so it does not count
// against llvmpipe's limit on an invocation's loop iterations, host/wgpu/src/loops.rs.)

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

// Whether the candidate whose left side has weighted count nl and entries dl is valid in
// a slot of n and d (docs/algorithm.md §7): at least min_leaf distinct rows each side. The
// non-zero weighted counts always hold for real inputs (every entry weighs at least 1);
// they only keep wrapped or garbage counts from dividing by zero (as SplitSearch).
fn valid(nl: u32, dl: u32, n: u32, d: u32, min_leaf: u32) -> bool {
    return dl >= min_leaf && d - dl >= min_leaf && nl != 0u && n - nl != 0u;
}

// Writes the 12-word record of local slot k (docs/algorithm.md §7): the candidate when
// `split` (a valid candidate of an impure slot was found), else a leaf whose words 1-5
// are 0; then `varied` (the record's `varying`, a WGSL keyword: allowed features not
// constant in the slot) and `impure`.
// Uses the including shader's `p.slot_begin` and `splits` binding.
fn write_record(k: u32, split: bool, j: u32, b: u32, nl: u32, dl: u32, sl: vec2<u32>, n: u32, d: u32, s: vec2<u32>, varied: u32, impure: bool) {
    let out = (p.slot_begin + k) * 12u;
    if (split) {
        splits[out] = j;
        splits[out + 1u] = b;
        splits[out + 2u] = nl;
        splits[out + 3u] = dl;
        splits[out + 4u] = sl.x;
        splits[out + 5u] = sl.y;
    } else {
        splits[out] = NONE;
        splits[out + 1u] = 0u;
        splits[out + 2u] = 0u;
        splits[out + 3u] = 0u;
        splits[out + 4u] = 0u;
        splits[out + 5u] = 0u;
    }
    splits[out + 6u] = n;
    splits[out + 7u] = d;
    splits[out + 8u] = s.x;
    splits[out + 9u] = s.y;
    splits[out + 10u] = varied;
    splits[out + 11u] = select(0u, 1u, impure);
}

// True in the pipelines of the launches that merge into the records written by earlier
// launches of the same call (each scanning a later block of features); false in the others,
// whose code then has none of the merge (the wgpu backend compiles the merging variants only
// when it needs them: every score() call is a sizeable share of a kernel's compile time).
override merging: bool = false;

// A slot's totals as the first launch of a call wrote them in its record (words 6-9, 11).
struct SlotTotals {
    n: u32,
    d: u32,
    s: vec2<u32>,
    impure: bool,
}

// Uses the including shader's `p.slot_begin` and `splits` binding.
fn record_totals(k: u32) -> SlotTotals {
    let out = (p.slot_begin + k) * 12u;
    return SlotTotals(splits[out + 6u], splits[out + 7u], vec2<u32>(splits[out + 8u], splits[out + 9u]), splits[out + 11u] != 0u);
}

// write_record for a launch that scanned one block of a call's features, ascending: the
// first launch (not `merging`) writes the record; a later one keeps the record's candidate
// unless its own (`split`, score `sc`) scores strictly higher (the record's features are
// lower, so they win ties, as in one ascending scan), and adds its `varied` to the
// record's. A kept candidate's score is recomputed exactly from its record (nL, SL) and
// the slot's (n, S), so the comparison is the one a single scan would make.
// Uses the including shader's `p.slot_begin` and `splits` binding.
fn finish_record(k: u32, split: bool, sc: vec4<u32>, j: u32, b: u32, nl: u32, dl: u32, sl: vec2<u32>, n: u32, d: u32, s: vec2<u32>, varied: u32, impure: bool) {
    var all_varied = varied;
    if (merging) {
        let out = (p.slot_begin + k) * 12u;
        all_varied += splits[out + 10u];
        if (splits[out] != NONE) {
            let kept_nl = splits[out + 2u];
            let kept_sl = vec2<u32>(splits[out + 4u], splits[out + 5u]);
            let kept = add128(score(kept_sl, kept_nl), score(sub64(s, kept_sl), n - kept_nl));
            if (!split || !gt128(sc, kept)) {
                splits[out + 10u] = all_varied;
                return;
            }
        }
    }
    write_record(k, split, j, b, nl, dl, sl, n, d, s, all_varied, impure);
}

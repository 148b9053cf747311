// IEEE f32 comparisons on bit patterns, exact whatever the device does with subnormals;
// shared by bin_features.wgsl and predict_forest.wgsl: the backend prepends this file.

fn is_nan(b: u32) -> bool {
    return (b & 0x7fffffffu) > 0x7f800000u;
}

// Maps an f32 bit pattern to a u32 ordered like the float (-0 == +0).
fn order_key(b: u32) -> u32 {
    var v = b;
    if ((v & 0x7fffffffu) == 0u) {
        v = 0u;
    }
    if ((v & 0x80000000u) != 0u) {
        return ~v;
    }
    return v | 0x80000000u;
}

// IEEE `a < b` on bit patterns (false when either is NaN).
fn f32_lt(a: u32, b: u32) -> bool {
    if (is_nan(a) || is_nan(b)) {
        return false;
    }
    return order_key(a) < order_key(b);
}

// IEEE `a <= b` on bit patterns (false when either is NaN).
fn f32_le(a: u32, b: u32) -> bool {
    if (is_nan(a) || is_nan(b)) {
        return false;
    }
    return order_key(a) <= order_key(b);
}

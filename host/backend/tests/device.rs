//! The validating front: every out-of-range request is refused with a typed error.

use wasi_gpu_backend::*;

fn device(limits: Limits) -> Device {
    Device::new(Box::new(CpuBackend::new()), limits)
}

#[test]
fn reads_and_writes_stay_inside_the_buffer() {
    let mut d = device(Limits::default());
    let b = d.create_buffer(10).unwrap();
    d.write(b, 3, &[1, 2, 3]).unwrap();
    assert_eq!(d.read(b, 2, 5).unwrap(), [0, 1, 2, 3, 0]);
    assert!(matches!(d.read(b, 8, 3), Err(GpuError::InvalidArgument(_))));
    assert!(matches!(d.write(b, 10, &[1]), Err(GpuError::InvalidArgument(_))));
    assert!(matches!(d.read(b, u64::MAX, 2), Err(GpuError::InvalidArgument(_))));
    assert_eq!(d.read(b, 10, 0).unwrap(), Vec::<u8>::new());
}

#[test]
fn dropped_buffers_are_gone_and_memory_is_returned() {
    let mut d = device(Limits::default());
    let a = d.create_buffer(100).unwrap();
    let b = d.create_buffer(50).unwrap();
    assert_eq!(d.used_bytes(), 150);
    d.drop_buffer(a);
    assert_eq!(d.used_bytes(), 50);
    assert!(matches!(d.read(a, 0, 1), Err(GpuError::InvalidArgument(_))));
    assert!(matches!(d.copy(a, 0, b, 0, 1), Err(GpuError::InvalidArgument(_))));
    d.release_all();
    assert_eq!((d.used_bytes(), d.live_buffers()), (0, 0));
}

#[test]
fn limits_are_enforced() {
    let mut d = device(Limits { max_device_bytes: 1000, max_buffers: 2, max_transfer_bytes: 16 });
    assert!(matches!(d.create_buffer(1001), Err(GpuError::LimitExceeded(_))));
    let a = d.create_buffer(600).unwrap();
    assert!(matches!(d.create_buffer(401), Err(GpuError::LimitExceeded(_))));
    let _b = d.create_buffer(400).unwrap();
    d.drop_buffer(_b);
    let _c = d.create_buffer(1).unwrap();
    assert!(matches!(d.create_buffer(1), Err(GpuError::LimitExceeded(_))));
    assert!(matches!(d.read(a, 0, 17), Err(GpuError::LimitExceeded(_))));
    assert!(matches!(d.create_buffer(u64::MAX), Err(GpuError::LimitExceeded(_))));
}

#[test]
fn copies_are_checked_and_overlap_is_refused() {
    let mut d = device(Limits::default());
    let a = d.create_buffer(8).unwrap();
    let b = d.create_buffer(8).unwrap();
    d.write(a, 0, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    d.copy(a, 2, b, 5, 3).unwrap();
    assert_eq!(d.read(b, 0, 8).unwrap(), [0, 0, 0, 0, 0, 3, 4, 5]);
    assert!(d.copy(a, 6, b, 0, 3).is_err());
    assert!(d.copy(a, 0, a, 2, 4).is_err());
    d.copy(a, 0, a, 4, 4).unwrap();
    assert_eq!(d.read(a, 4, 4).unwrap(), [1, 2, 3, 4]);
}

#[test]
fn kernels_refuse_small_buffers_aliases_and_bad_parameters() {
    let mut d = device(Limits::default());
    let w = d.create_buffer(4 * 10).unwrap();
    let n = d.create_buffer(4 * 10).unwrap();
    let small = d.create_buffer(4 * 9).unwrap();
    let p = BootstrapParams { seed: 1, rows: 10, tree_begin: 0, tree_count: 1, draws: 10 };
    d.bootstrap(&p, w, n).unwrap();
    assert!(matches!(d.bootstrap(&p, w, w), Err(GpuError::InvalidArgument(m)) if m.contains("same buffer")));
    assert!(matches!(d.bootstrap(&p, w, small), Err(GpuError::InvalidArgument(m)) if m.contains("node-of")));
    let huge = BootstrapParams { rows: u32::MAX, tree_count: u32::MAX - 1, ..p };
    assert!(d.bootstrap(&huge, w, n).is_err());
    let bins = BinFeaturesParams { rows: 1, features: 1, max_bins: 257 };
    assert!(matches!(d.bin_features(&bins, w, n, small), Err(GpuError::InvalidArgument(m)) if m.contains("max-bins")));
    let split = SplitParams { features: 33, max_bins: 4, slot_begin: 0, slot_count: 1, min_samples_leaf: 1, mask_words: 1 };
    assert!(matches!(d.find_splits(&split, w, n, small), Err(GpuError::InvalidArgument(m)) if m.contains("mask-words")));
    let deep = PredictParams { rows: 1, features: 1, tree_count: 1, node_count: 1, max_depth: 65 };
    let sums = d.create_buffer(8).unwrap();
    assert!(d.predict_forest(&deep, w, n, small, sums).is_err());
}

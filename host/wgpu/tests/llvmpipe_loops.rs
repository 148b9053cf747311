//! How llvmpipe (Mesa's software Vulkan) limits the loops of a shader invocation, which the
//! backend's launch plans rely on (`src/loops.rs`): measured here on tiny shaders, so that a
//! Mesa that counts differently fails this test rather than the kernels silently. Runs only
//! on an llvmpipe adapter (skipped elsewhere).

use wgpu::util::DeviceExt;

/// llvmpipe's device and queue, and its SIMD width (invocations that share a counter).
fn llvmpipe() -> Option<(wgpu::Device, wgpu::Queue, u32)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    let Some(adapter) = adapters.into_iter().find(|a| a.get_info().driver == "llvmpipe") else {
        eprintln!("no llvmpipe adapter: skipped");
        return None;
    };
    let info = adapter.get_info();
    eprintln!("{} ({}), subgroups of {}", info.name, info.driver_info, info.subgroup_min_size);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).ok()?;
    Some((device, queue, info.subgroup_min_size))
}

/// Runs `body` (WGSL statements over `lid`, the local index, `p`, 16 parameter words, and
/// `out`, 8 words per invocation from `o = lid * 8`) in one workgroup of 64; returns `out`.
fn run(device: &wgpu::Device, queue: &wgpu::Queue, body: &str, params: &[u32]) -> Vec<u32> {
    let source = format!(
        "@group(0) @binding(0) var<storage, read> p: array<u32>;
         @group(0) @binding(1) var<storage, read_write> out: array<u32>;
         @compute @workgroup_size(64)
         fn main(@builtin(local_invocation_index) lid: u32) {{
             let o = lid * 8u;
             {body}
         }}"
    );
    let source = wgpu::ShaderSource::Wgsl(source.into());
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: None, source });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let mut words = params.to_vec();
    words.resize(16, 0);
    let storage = wgpu::BufferUsages::STORAGE;
    let contents = bytemuck::cast_slice(&words);
    let p = device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: None, contents, usage: storage });
    let size = 64 * 8 * 4;
    let buffer = |usage| device.create_buffer(&wgpu::BufferDescriptor { label: None, size, usage, mapped_at_creation: false });
    let out = buffer(storage | wgpu::BufferUsages::COPY_SRC);
    let back = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: p.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: out.as_entire_binding() },
        ],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    let mut pass = encoder.begin_compute_pass(&Default::default());
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &group, &[]);
    pass.dispatch_workgroups(1, 1, 1);
    drop(pass);
    encoder.copy_buffer_to_buffer(&out, 0, &back, 0, size);
    queue.submit([encoder.finish()]);
    back.slice(..).map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let view = back.slice(..).get_mapped_range().unwrap();
    bytemuck::cast_slice(&view).to_vec()
}

/// Two loops one after the other: out = (iterations of the first, of the second).
const TWO_LOOPS: &str = "var a = 0u; var b = 0u;
    for (var i = 0u; i < p[0]; i++) { a++; }
    for (var i = 0u; i < p[1]; i++) { b++; }
    out[o] = a; out[o + 1u] = b;";

#[test]
fn llvmpipe_ends_an_invocations_loops_after_65535_passes_in_all() {
    let Some((device, queue, simd)) = llvmpipe() else { return };
    let d = (&device, &queue);
    let two = |a: u32, b: u32| {
        let r = run(d.0, d.1, TWO_LOOPS, &[a, b]);
        (r[0], r[1])
    };
    // One loop: 65535 iterations at most.
    assert_eq!(two(65535, 0), (65535, 0));
    assert_eq!(two(65536, 0), (65535, 0));
    assert_eq!(two(100_000, 0), (65535, 0));
    // One counter for all loops, and the pass that leaves a loop counts too: a loop of n
    // iterations costs n + 1 (40001 + 25534 = 65535).
    assert_eq!(two(40_000, 40_000), (40_000, 25_534));
    assert_eq!(two(32_767, 32_767), (32_767, 32_767));
    // Once it is spent, a later loop makes one pass.
    assert_eq!(two(70_000, 100), (65_535, 1));
    assert_eq!(two(65_534, 100), (65_534, 1));
    // Nested loops: the inner loops' passes and the outer loop's (255 * 257 = 65535).
    let nested = "var c = 0u; for (var i = 0u; i < p[0]; i++) { for (var j = 0u; j < p[1]; j++) { c++; } } out[o] = c;";
    assert_eq!(run(d.0, d.1, nested, &[255, 255])[0], 255 * 255);
    assert!(run(d.0, d.1, nested, &[255, 256])[0] < 255 * 256);
    // Loops of a small constant trip count are unrolled and cost nothing (the score's long
    // division: 32 steps, counting down).
    let constant = "var c = 0u;
        for (var i = 0u; i < p[0]; i++) { for (var bit = 31i; bit >= 0i; bit--) { c += u32(bit) ^ i; } }
        var e = 0u; for (var i = 0u; i < p[1]; i++) { e++; } out[o] = c; out[o + 1u] = e;";
    assert_eq!(run(d.0, d.1, constant, &[1000, 60_000])[1], 60_000);
    // The counter belongs to a SIMD group: invocation 13's long loop cuts the next loop of
    // its whole group short, and only its group's.
    let lane = "var a = 0u; var b = 0u; var n = 0u; if (lid == p[2]) { n = p[0]; }
        for (var i = 0u; i < n; i++) { a++; } for (var i = 0u; i < p[1]; i++) { b++; }
        out[o] = a; out[o + 1u] = b;";
    let r = run(d.0, d.1, lane, &[60_000, 10_000, 13]);
    for l in 0..64 {
        let want = if l / simd == 13 / simd { 5534 } else { 10_000 };
        assert_eq!(r[l as usize * 8 + 1], want, "invocation {l} of SIMD groups of {simd}");
    }
}

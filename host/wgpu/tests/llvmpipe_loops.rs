//! EXPERIMENT (temporary): how llvmpipe's loop limiter counts.

use wgpu::util::DeviceExt;

fn device() -> Option<(wgpu::Device, wgpu::Queue, wgpu::AdapterInfo)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    let adapter = adapters.into_iter().find(|a| a.get_info().device_type == wgpu::DeviceType::Cpu)?;
    let info = adapter.get_info();
    let (d, q) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).ok()?;
    Some((d, q, info))
}

/// Runs `body` (WGSL statements; `lid` is the local index, `p` the params array, `out` the
/// output array of 64 * 8 words, `o` = lid * 8) in one workgroup of 64.
fn run(d: &wgpu::Device, q: &wgpu::Queue, body: &str, params: &[u32]) -> Vec<u32> {
    let src = format!(
        "@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {{
    let o = lid * 8u;
    {body}
}}"
    );
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor { label: None, source: wgpu::ShaderSource::Wgsl(src.into()) });
    let pipe = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let mut pw = params.to_vec();
    pw.resize(16, 0);
    let pbuf = d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&pw),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let size = 64 * 8 * 4;
    let obuf = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let rbuf = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bg = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipe.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: pbuf.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: obuf.as_entire_binding() },
        ],
    });
    let mut enc = d.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipe);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    enc.copy_buffer_to_buffer(&obuf, 0, &rbuf, 0, size);
    q.submit([enc.finish()]);
    rbuf.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    d.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let v = rbuf.slice(..).get_mapped_range().unwrap();
    bytemuck::cast_slice(&v).to_vec()
}

#[test]
fn experiment() {
    let Some((d, q, info)) = device() else {
        eprintln!("no software adapter");
        return;
    };
    eprintln!("{info:?}");
    // 1. One loop of n.
    for n in [65533u32, 65534, 65535, 65536, 100000] {
        let r = run(&d, &q, "var c = 0u; for (var i = 0u; i < p[0]; i++) { c++; } out[o] = c;", &[n]);
        eprintln!("single loop n={n}: lane0 {} lane63 {}", r[0], r[63 * 8]);
    }
    // 2. Two sequential loops.
    for (a, b) in [(40000u32, 40000u32), (30000, 30000), (32767, 32767), (32766, 32767), (65534, 5), (65533, 5)] {
        let r = run(
            &d,
            &q,
            "var c = 0u; var e = 0u; for (var i = 0u; i < p[0]; i++) { c++; } for (var i = 0u; i < p[1]; i++) { e++; } out[o] = c; out[o + 1u] = e;",
            &[a, b],
        );
        eprintln!("two loops {a},{b}: {} {}", r[0], r[1]);
    }
    // 3. Nested loops.
    for (a, b) in [(300u32, 300u32), (255, 256), (256, 255), (255, 255), (254, 256)] {
        let r = run(
            &d,
            &q,
            "var c = 0u; for (var i = 0u; i < p[0]; i++) { for (var j = 0u; j < p[1]; j++) { c++; } } out[o] = c;",
            &[a, b],
        );
        eprintln!("nested {a}x{b}: {} (of {})", r[0], a * b);
    }
    // 4. Lanes: lane 0 loops p[0] first, then every lane loops p[1].
    let r = run(
        &d,
        &q,
        "var c = 0u; var e = 0u; var n = 0u; if (lid == p[2]) { n = p[0]; } for (var i = 0u; i < n; i++) { c++; } for (var i = 0u; i < p[1]; i++) { e++; } out[o] = c; out[o + 1u] = e;",
        &[60000, 10000, 0],
    );
    eprintln!("lane0 60000 then all 10000: {:?}", (0..64).map(|l| r[l * 8 + 1]).collect::<Vec<_>>());
    let r = run(
        &d,
        &q,
        "var c = 0u; var e = 0u; var n = 0u; if (lid == p[2]) { n = p[0]; } for (var i = 0u; i < n; i++) { c++; } for (var i = 0u; i < p[1]; i++) { e++; } out[o] = c; out[o + 1u] = e;",
        &[60000, 10000, 13],
    );
    eprintln!("lane13 60000 then all 10000: {:?}", (0..64).map(|l| r[l * 8 + 1]).collect::<Vec<_>>());
    // 5. Constant loops: outer p[0] times an inner loop of 4 / 32 constant iterations.
    for k in [4u32, 8, 16, 32] {
        let body = format!("var c = 0u; for (var i = 0u; i < p[0]; i++) {{ for (var j = 0u; j < {k}u; j++) {{ c += j ^ i; }} }} out[o] = c; var e = 0u; for (var i = 0u; i < p[1]; i++) {{ e++; }} out[o + 1u] = e;");
        let r = run(&d, &q, &body, &[1000, 60000]);
        eprintln!("const inner {k}: outer 1000 then 60000: second loop ran {}", r[1]);
    }
    // 6. After exhaustion each later loop runs one pass.
    let r = run(
        &d,
        &q,
        "var c = 0u; var e = 0u; for (var i = 0u; i < p[0]; i++) { c++; } for (var i = 0u; i < p[1]; i++) { e++; } var f = 0u; for (var i = 0u; i < p[1]; i++) { f++; } out[o] = c; out[o + 1u] = e; out[o + 2u] = f;",
        &[70000, 100],
    );
    eprintln!("after exhaustion: {} {} {}", r[0], r[1], r[2]);
    // 7. div_limb-style: 31..0 signed loop inside a function called in a loop.
    let r = run(
        &d,
        &q,
        "var c = 0u; for (var i = 0u; i < p[0]; i++) { for (var bit = 31i; bit >= 0i; bit--) { c += u32(bit) ^ i; } } var e = 0u; for (var i = 0u; i < p[1]; i++) { e++; } out[o] = c; out[o + 1u] = e;",
        &[1000, 60000],
    );
    eprintln!("div_limb loop: outer 1000 then 60000: second loop ran {}", r[1]);
    // 8. loop with break at top only (while), and `loop {}` with break.
    let r = run(
        &d,
        &q,
        "var c = 0u; loop { if (c >= p[0]) { break; } c++; } var e = 0u; for (var i = 0u; i < p[1]; i++) { e++; } out[o] = c; out[o + 1u] = e;",
        &[30000, 40000],
    );
    eprintln!("loop-break 30000 then 40000: {} {}", r[0], r[1]);
}

// wasi_gpu_start.c: the `_start` of a C/C++ wasi:gpu guest built as a preview-1 core
// module and componentized with the wasi_snapshot_preview1 command adapter.
//
// Why it exists: wasi-libc's own crt1-command `_start` calls `__wasm_call_ctors`, which
// makes wasm-ld wrap every *other* export, `cabi_realloc` included, in a call to the
// constructors. The host calls `cabi_realloc` to return strings and lists (e.g. from
// `info` or `buffer.read`); wasi-libc's constructors call WASI imports (preopens), and
// imports are forbidden inside `cabi_realloc`, so the guest traps with "cannot leave
// component instance". Linking with `-nostartfiles -Wl,--no-entry` and this `_start`
// runs the constructors exactly once and leaves `cabi_realloc` unwrapped.
#include <stdlib.h>

extern void __wasm_call_ctors(void);
extern int __main_void(void);

__attribute__((export_name("_start"))) void _start(void) {
    static volatile int started = 0;
    if (started) abort();  // a command runs once per instance
    started = 1;
    __wasm_call_ctors();
    exit(__main_void());
}

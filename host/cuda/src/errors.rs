//! CUDA driver errors as the guest-visible [`GpuError`].

use cudarc::driver::DriverError;
use cudarc::driver::sys::CUresult;
use wasi_gpu_backend::GpuError;

/// "CUDA_ERROR_X: description" for a driver error, without trusting the driver to
/// describe it (the lookup itself can fail).
pub(crate) fn describe(e: &DriverError) -> String {
    let name = e.error_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| format!("{:?}", e.0));
    match e.error_string() {
        Ok(s) => format!("{name}: {}", s.to_string_lossy()),
        Err(_) => name,
    }
}

/// Errors after which the CUDA context is unusable: a kernel faulted.
pub(crate) fn is_kernel_fault(code: CUresult) -> bool {
    matches!(
        code,
        CUresult::CUDA_ERROR_ILLEGAL_ADDRESS
            | CUresult::CUDA_ERROR_LAUNCH_FAILED
            | CUresult::CUDA_ERROR_LAUNCH_TIMEOUT
            | CUresult::CUDA_ERROR_MISALIGNED_ADDRESS
            | CUresult::CUDA_ERROR_ILLEGAL_INSTRUCTION
            | CUresult::CUDA_ERROR_INVALID_PC
            | CUresult::CUDA_ERROR_HARDWARE_STACK_ERROR
            | CUresult::CUDA_ERROR_ASSERT
    )
}

/// Maps a driver error during `op` to the guest's error type: out of memory stays
/// out of memory, a failed or faulting kernel is a kernel failure, anything else
/// means the device is no longer usable.
pub(crate) fn to_gpu(op: &str, e: &DriverError) -> GpuError {
    let what = describe(e);
    match e.0 {
        CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
            GpuError::OutOfMemory(format!("{op}: the GPU is out of memory ({what}); free buffers or use smaller batches"))
        }
        CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES | CUresult::CUDA_ERROR_INVALID_VALUE => {
            GpuError::KernelFailure(format!("{op}: {what}"))
        }
        code if is_kernel_fault(code) => {
            GpuError::KernelFailure(format!("{op}: a kernel faulted ({what}); the CUDA context is now unusable"))
        }
        _ => GpuError::DeviceLost(format!("{op}: {what}")),
    }
}

//! The one error type a guest can observe; it maps one-to-one onto WIT `error`.

/// A failure reported to the guest. Every message says what was wrong and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("kernel failure: {0}")]
    KernelFailure(String),
    #[error("device lost: {0}")]
    DeviceLost(String),
    /// The run was cancelled (`--timeout` passed) while the call was under way. Never
    /// shown to a guest: the host ends the guest with a trap instead.
    #[error("cancelled: {0}")]
    Cancelled(String),
}

impl GpuError {
    /// Shorthand for the most common error: a guest passed something out of range.
    pub fn invalid(msg: impl Into<String>) -> Self {
        GpuError::InvalidArgument(msg.into())
    }
}

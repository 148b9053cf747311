//! `--max-memory`: caps the guest's linear memories and tables, all of them together, and
//! the number of instances, tables and memories it may create.

use wasmtime::ResourceLimiter;

/// Most elements any one guest table may hold; generous for real programs, bounded
/// so a guest cannot exhaust host memory through `table.grow`.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Host bytes charged to `--max-memory` per table element (a reference is one pointer).
pub const TABLE_ELEMENT_BYTES: u64 = 8;

/// Most core instances, tables and memories one guest (a component with all its core
/// modules) may create. Our guests use under 10 of each; every instance's own host
/// bookkeeping is bounded by the module that defines it.
pub const MAX_INSTANCES: usize = 100;

/// A [`ResourceLimiter`] that refuses linear-memory growth past a byte budget shared by
/// every memory of the guest, and remembers that it did so the runner can explain a
/// trap that follows.
#[derive(Debug, Clone)]
pub struct GuestLimiter {
    max_bytes: u64,
    used_bytes: u64,
    /// Set once a growth request was refused: (bytes in use, bytes requested in total).
    refused: Option<(u64, u64)>,
}

impl GuestLimiter {
    /// A limiter allowing `max_bytes` of linear memory in total.
    pub fn new(max_bytes: u64) -> Self {
        GuestLimiter { max_bytes, used_bytes: 0, refused: None }
    }

    /// The `--max-memory` budget in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Linear memory the guest holds now, in bytes.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Takes `grow` more bytes from the budget, or refuses (remembering the first refusal).
    fn charge(&mut self, grow: u64) -> bool {
        let total = self.used_bytes.saturating_add(grow);
        if total > self.max_bytes {
            self.refused.get_or_insert((self.used_bytes, total));
            return false;
        }
        self.used_bytes = total;
        true
    }

    /// The first refused growth: (bytes held then, total the guest asked for).
    pub fn refused(&self) -> Option<(u64, u64)> {
        self.refused
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        Ok(self.charge((desired as u64).saturating_sub(current as u64)))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS || maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        // Tables share the linear-memory budget, at one pointer per element.
        Ok(self.charge((desired as u64).saturating_sub(current as u64).saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_by_all_memories_and_refusal_is_remembered() {
        let mut l = GuestLimiter::new(3 << 16);
        assert!(l.memory_growing(0, 2 << 16, None).unwrap());
        assert!(l.memory_growing(0, 1 << 16, None).unwrap());
        assert_eq!(l.used_bytes(), 3 << 16);
        assert_eq!(l.refused(), None);
        assert!(!l.memory_growing(1 << 16, 2 << 16, None).unwrap());
        assert_eq!(l.refused(), Some((3 << 16, 4 << 16)));
        assert_eq!(l.used_bytes(), 3 << 16);
    }

    #[test]
    fn declared_maximum_and_table_cap_are_respected() {
        let mut l = GuestLimiter::new(u64::MAX);
        assert!(!l.memory_growing(0, 10, Some(5)).unwrap());
        assert_eq!(l.refused(), None, "a module's own maximum is not the --max-memory limit");
        assert!(l.table_growing(0, 100, None).unwrap());
        assert!(!l.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).unwrap());
    }

    #[test]
    fn tables_share_the_memory_budget() {
        let mut l = GuestLimiter::new(1 << 16);
        assert!(l.memory_growing(0, 1 << 15, None).unwrap());
        assert!(l.table_growing(0, 1 << 11, None).unwrap());
        assert_eq!(l.used_bytes(), (1 << 15) + (1 << 14));
        assert!(!l.table_growing(1 << 11, 1 << 13, None).unwrap());
        assert!(l.refused().is_some());
        assert!(!l.memory_growing(1 << 15, 1 << 16, None).unwrap());
    }
}

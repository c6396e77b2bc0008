//! Publishing a finished CSV durably: written to a temporary, synced, then named.
//!
//! Knows files on disk and nothing of the batch that decides what to write.

pub mod commit;
pub(crate) mod disk;
pub mod durable;
pub mod held;
pub mod limits;
pub(crate) mod pool;
pub mod temp;

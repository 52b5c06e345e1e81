//! One file per engine adapter.
#[cfg(feature = "fjall")]
pub mod fjall;
#[cfg(feature = "libbitcask")]
pub mod libbitcask;
#[cfg(feature = "lmdb")]
pub mod lmdb;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "sled")]
pub mod sled;

//! ferrostore-core: the pure Rust core of ferrostore.
//!
//! No Python types live here. Each area owns its algorithms and its error enum:
//! [`online`] is the LMDB online store, [`join`] the point-in-time join. The PyO3 crate `ferrostore-py` only converts
//! arguments, releases the GIL and maps [`Error`] variants onto Python exceptions.

pub mod error;
mod fxhash;
pub mod join;
pub mod online;
mod prefetch;
pub mod timestamps;
pub mod vectors;

pub use error::{Error, Result};

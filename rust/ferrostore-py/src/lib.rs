//! `ferrostore._core`: the PyO3 face of `ferrostore-core`.
//!
//! This crate holds no logic: it converts arguments into owned Rust values, runs the core
//! with the GIL released and panics caught ([`run`]), maps core errors onto
//! `ferrostore.errors` ([`error`]) and converts results into Arrow or small Python values.

mod allocator;
mod arrow_input;
mod error;
mod join;
mod online;
mod vectors;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    allocator::configure();
    m.add_class::<online::OnlineStore>()?;
    m.add_class::<online::KeyReadPlan>()?;
    m.add_function(wrap_pyfunction!(join::point_in_time_join, m)?)?;
    m.add_class::<vectors::VectorCollection>()?;
    m.add_function(wrap_pyfunction!(vectors::check_filters, m)?)?;
    m.add_function(wrap_pyfunction!(vectors::mark_collection_deleted, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

//! Core errors to `ferrostore.errors`, in one place, and the one helper that runs core code.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrostore_core::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// The `ferrostore.errors` class name of each core error variant.
fn class_name(err: &Error) -> &'static str {
    match err {
        Error::NotFound(_) => "NotFound",
        Error::AlreadyExists(_) => "AlreadyExists",
        Error::InvalidArgument(_) => "InvalidArgument",
        Error::SchemaMismatch(_) => "SchemaMismatch",
        Error::Conflict(_) => "Conflict",
        Error::StorageFull(_) => "StorageFull",
        Error::Storage(_) => "StorageError",
    }
}

/// Builds the Python exception of a core error.
pub(crate) fn to_py_err(py: Python<'_>, err: &Error) -> PyErr {
    let message = err.to_string();
    let class = py
        .import("ferrostore.errors")
        .and_then(|module| module.getattr(class_name(err)))
        .and_then(|class| class.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(class) => PyErr::from_type(class, message),
        Err(import_error) => PyRuntimeError::new_err(format!("{message} ({import_error})")),
    }
}

/// Runs `f` with the GIL released, turning a core error or a panic into a Python exception
/// of `ferrostore.errors` so that no panic crosses into Python.
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> ferrostore_core::Result<T> + Send,
) -> PyResult<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    flatten(py, outcome)
}

/// As [`run`], keeping the GIL: for calls shorter than releasing and retaking it.
pub(crate) fn run_holding_gil<T>(
    py: Python<'_>,
    f: impl FnOnce() -> ferrostore_core::Result<T>,
) -> PyResult<T> {
    flatten(py, catch_unwind(AssertUnwindSafe(f)))
}

fn flatten<T>(
    py: Python<'_>,
    outcome: std::thread::Result<ferrostore_core::Result<T>>,
) -> PyResult<T> {
    match outcome {
        Ok(result) => result.map_err(|e| to_py_err(py, &e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(to_py_err(
                py,
                &Error::Storage(format!("internal error in ferrostore's core: {what}")),
            ))
        }
    }
}

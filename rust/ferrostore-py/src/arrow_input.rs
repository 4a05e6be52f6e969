//! Arrow data handed in from Python (pyarrow, pandas, polars: anything with the Arrow
//! PyCapsule interface) as Rust record batches.

use arrow_array::RecordBatch;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyRecordBatch;

/// The batches of `data` (zero-copy); one empty batch when it has none, so the schema is
/// always there to check.
pub(crate) fn record_batches(data: AnyRecordBatch) -> PyResult<Vec<RecordBatch>> {
    let reader = data.into_reader()?;
    let schema = reader.schema();
    let mut batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyErr::from(pyo3_arrow::error::PyArrowError::from(e)))?;
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

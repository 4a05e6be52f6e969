//! `ferrostore._core.point_in_time_join`: conversions around `ferrostore_core::join`.

use ferrostore_core::join::{
    feature_window, point_in_time_join as join, rows_in_window, single_batch, JoinSpec,
};
use ferrostore_core::Error;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::PyRecordBatch;

use crate::arrow_input::record_batches;
use crate::error::run;

/// Point-in-time join of `features` onto `entities`; see `ferrostore/_core.pyi`.
#[pyfunction]
#[pyo3(signature = (entities, features, *, entity_keys, feature_keys, entity_timestamp, feature_timestamp, created_timestamp=None, ttl_micros=None, columns))]
#[allow(clippy::too_many_arguments)]
pub fn point_in_time_join<'py>(
    py: Python<'py>,
    entities: AnyRecordBatch,
    features: AnyRecordBatch,
    entity_keys: Vec<String>,
    feature_keys: Vec<String>,
    entity_timestamp: String,
    feature_timestamp: String,
    created_timestamp: Option<String>,
    ttl_micros: Option<i64>,
    columns: Vec<(String, String)>,
) -> PyResult<Bound<'py, PyAny>> {
    let entities = record_batches(entities)?;
    let schema = entities[0].schema();
    let entities = run(py, || single_batch(schema, &entities))?;
    let spec = JoinSpec {
        entity_keys,
        feature_keys,
        entity_timestamp,
        feature_timestamp,
        created_timestamp,
        ttl_micros,
        columns,
    };
    // Feature batches are read one at a time (from a Parquet scan, as it decodes them) and
    // only their rows inside the entity rows' window are kept.
    let reader = features.into_reader()?;
    let out = run(py, move || {
        let window = feature_window(&entities, &spec)?;
        let schema = reader.schema();
        let mut kept = Vec::new();
        for batch in reader {
            let batch =
                batch.map_err(|e| Error::Storage(format!("reading the feature rows: {e}")))?;
            kept.push(rows_in_window(&batch, &spec, &window)?);
        }
        if kept.is_empty() {
            kept.push(arrow_array::RecordBatch::new_empty(schema));
        }
        join(&entities, &kept, &spec)
    })?;
    PyRecordBatch::new(out).into_pyarrow(py)
}

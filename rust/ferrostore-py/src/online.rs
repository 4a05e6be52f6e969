//! `ferrostore._core.OnlineStore`: conversions around `ferrostore_core::online`.

use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use ferrostore_core::online::codec::{KeyValue, Value};
use ferrostore_core::online::{
    Column, KeysRequest, OnSchemaChange, OnlineStore as CoreStore, ValueType, ViewRequest,
    ViewSchema, ViewSpec, WriteOptions,
};
use ferrostore_core::Error;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDateTime, PyDict, PyIterator, PyList, PyString, PyTzInfo};
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::PyRecordBatch;

use crate::arrow_input::record_batches;
use crate::error::{run, run_holding_gil, to_py_err};

fn current_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn columns(pairs: Vec<(String, String)>) -> ferrostore_core::Result<Vec<Column>> {
    pairs
        .into_iter()
        .map(|(name, ty)| Ok(Column::new(name, ty.parse::<ValueType>()?)))
        .collect()
}

fn schema_dict<'py>(py: Python<'py>, schema: &ViewSchema) -> PyResult<Bound<'py, PyDict>> {
    let pairs = |cols: &[Column]| -> Vec<(String, &'static str)> {
        cols.iter()
            .map(|c| (c.name.clone(), c.value_type.name()))
            .collect()
    };
    let dict = PyDict::new(py);
    dict.set_item("name", &schema.name)?;
    dict.set_item("version", schema.version)?;
    dict.set_item("view_id", schema.view_id)?;
    dict.set_item("join_keys", pairs(&schema.join_keys))?;
    dict.set_item("features", pairs(&schema.features))?;
    dict.set_item("ttl_micros", schema.ttl_micros)?;
    Ok(dict)
}

fn value_to_py<'py>(py: Python<'py>, value: Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Int32(v) => v.into_pyobject(py)?.into_any(),
        Value::Int64(v) => v.into_pyobject(py)?.into_any(),
        Value::Float32(v) => f64::from(v).into_pyobject(py)?.into_any(),
        Value::Float64(v) => v.into_pyobject(py)?.into_any(),
        Value::Bool(v) => v.into_pyobject(py)?.to_owned().into_any(),
        Value::String(v) => v.into_pyobject(py)?.into_any(),
        Value::Bytes(v) => PyBytes::new(py, &v).into_any(),
        Value::Timestamp(micros) => {
            // The epoch plus a timedelta keeps microseconds exact, unlike a float timestamp.
            let utc = PyTzInfo::utc(py)?;
            let epoch = PyDateTime::new(py, 1970, 1, 1, 0, 0, 0, 0, Some(&utc))?;
            let delta = py.import("datetime")?.getattr("timedelta")?;
            epoch.call_method1("__add__", (delta.call1((0, 0, micros))?,))?
        }
        Value::ListFloat32(v) => PyList::new(py, v.into_iter().map(f64::from))?.into_any(),
        Value::ListFloat64(v) => PyList::new(py, v)?.into_any(),
        Value::ListInt64(v) => PyList::new(py, v)?.into_any(),
        Value::ListString(v) => PyList::new(py, v)?.into_any(),
    })
}

fn key_value(obj: &Bound<'_, PyAny>) -> PyResult<KeyValue> {
    if let Ok(v) = obj.extract::<i64>() {
        if !obj.is_instance_of::<pyo3::types::PyBool>() {
            return Ok(KeyValue::Int(v));
        }
    }
    if let Ok(s) = obj.extract::<String>() {
        return Ok(KeyValue::String(s));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(KeyValue::Bytes(b.as_bytes().to_vec()));
    }
    Err(to_py_err(
        obj.py(),
        &Error::SchemaMismatch(format!(
            "entity key value {} of type {} is not supported: expected int, str or bytes",
            obj.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
            obj.get_type()
                .name()
                .map_or_else(|_| "?".into(), |n| n.to_string())
        )),
    ))
}

/// Views, features and output column names of a key read, resolved once and reused.
/// See `ferrostore/_core.pyi`.
#[pyclass(frozen, module = "ferrostore._core")]
pub struct KeyReadPlan {
    views: Vec<PlannedView>,
}

/// (view, join key names, feature names, output column names), as Python passes them.
type PlannedViewArgs = (String, Vec<String>, Vec<String>, Vec<String>);

struct PlannedView {
    view: String,
    join_keys: Vec<Py<PyString>>,
    features: Vec<String>,
    names: Vec<Py<PyString>>,
}

#[pymethods]
impl KeyReadPlan {
    /// `views`: (view, join key names, feature names, output column names) per view.
    #[new]
    fn new(py: Python<'_>, views: Vec<PlannedViewArgs>) -> PyResult<Self> {
        let views = views
            .into_iter()
            .map(|(view, join_keys, features, names)| {
                if names.len() != features.len() {
                    return Err(to_py_err(
                        py,
                        &Error::InvalidArgument(format!(
                            "view '{view}': {} output names for {} features",
                            names.len(),
                            features.len()
                        )),
                    ));
                }
                let intern = |v: Vec<String>| -> Vec<Py<PyString>> {
                    v.iter().map(|n| PyString::intern(py, n).unbind()).collect()
                };
                Ok(PlannedView {
                    view,
                    join_keys: intern(join_keys),
                    features,
                    names: intern(names),
                })
            })
            .collect::<PyResult<_>>()?;
        Ok(KeyReadPlan { views })
    }
}

/// Below this many lookups a read keeps the GIL: releasing it costs more than it frees.
const HOLD_GIL_LOOKUPS: usize = 64;

/// The `rows` key values of column `name` of `columns` (a dict of lists).
fn key_column<'py>(
    columns: &Bound<'py, PyDict>,
    name: &Bound<'py, PyString>,
    rows: usize,
) -> PyResult<Bound<'py, PyList>> {
    let py = columns.py();
    let Some(column) = columns.get_item(name)? else {
        return Err(to_py_err(
            py,
            &Error::SchemaMismatch(format!("entity rows lack join key {name}")),
        ));
    };
    let list = column.cast_into::<PyList>().map_err(PyErr::from)?;
    if list.len() != rows {
        return Err(to_py_err(
            py,
            &Error::InvalidArgument(format!(
                "join key column {name} has {} values: expected {rows}",
                list.len()
            )),
        ));
    }
    Ok(list)
}

/// A handle on an LMDB online store folder. See `ferrostore/_core.pyi`.
#[pyclass(frozen, module = "ferrostore._core")]
pub struct OnlineStore {
    store: CoreStore,
}

#[pymethods]
impl OnlineStore {
    #[new]
    #[pyo3(signature = (path, *, map_size=None, cache_bytes=None))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        map_size: Option<usize>,
        cache_bytes: Option<usize>,
    ) -> PyResult<Self> {
        let store = run(py, || {
            let store = CoreStore::open(&path, map_size)?;
            if let Some(bytes) = cache_bytes {
                store.set_cache_bytes(bytes)?;
            }
            Ok(store)
        })?;
        Ok(OnlineStore { store })
    }

    fn set_cache_bytes(&self, py: Python<'_>, bytes: usize) -> PyResult<()> {
        run(py, || self.store.set_cache_bytes(bytes))
    }

    fn cache_bytes_used(&self, py: Python<'_>) -> PyResult<usize> {
        run(py, || self.store.cache_bytes_used())
    }

    fn preload(&self, py: Python<'_>, view: String) -> PyResult<bool> {
        run(py, || self.store.preload(&view))
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.store.path().to_path_buf()
    }

    #[pyo3(signature = (name, join_keys, features, *, ttl_micros=None, on_schema_change="error"))]
    fn register_view<'py>(
        &self,
        py: Python<'py>,
        name: String,
        join_keys: Vec<(String, String)>,
        features: Vec<(String, String)>,
        ttl_micros: Option<i64>,
        on_schema_change: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let schema = run(py, || {
            let on_change = match on_schema_change {
                "error" => OnSchemaChange::Error,
                "new_version" => OnSchemaChange::NewVersion,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "on_schema_change={other:?}: expected 'error' or 'new_version'"
                    )))
                }
            };
            let spec = ViewSpec {
                name,
                join_keys: columns(join_keys)?,
                features: columns(features)?,
                ttl_micros,
            };
            self.store.register_view(&spec, on_change)
        })?;
        schema_dict(py, &schema)
    }

    fn view<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyDict>> {
        let schema = run(py, || self.store.view(&name))?;
        schema_dict(py, &schema)
    }

    fn views<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let views = run(py, || self.store.views())?;
        views.iter().map(|s| schema_dict(py, s)).collect()
    }

    #[pyo3(signature = (view, data, *, timestamp_column="event_timestamp".to_owned(), created_column=None))]
    fn write(
        &self,
        py: Python<'_>,
        view: String,
        data: AnyRecordBatch,
        timestamp_column: String,
        created_column: Option<String>,
    ) -> PyResult<(usize, usize, usize)> {
        let batches = record_batches(data)?;
        let options = WriteOptions {
            timestamp_column,
            created_column,
        };
        let s = run(py, || self.store.write(&view, &batches, &options))?;
        Ok((s.rows, s.written, s.skipped))
    }

    /// Writes each chunk an iterable yields (any input `write` takes) in one transaction.
    #[pyo3(signature = (view, chunks, *, timestamp_column="event_timestamp".to_owned(), created_column=None))]
    fn write_chunks(
        &self,
        py: Python<'_>,
        view: String,
        chunks: &Bound<'_, PyAny>,
        timestamp_column: String,
        created_column: Option<String>,
    ) -> PyResult<(usize, usize, usize)> {
        let chunks: Py<PyIterator> = chunks.try_iter()?.unbind();
        let options = WriteOptions {
            timestamp_column,
            created_column,
        };
        // A Python error raised while pulling a chunk is kept and raised as it is.
        let failure: Mutex<Option<PyErr>> = Mutex::new(None);
        let stream = std::iter::from_fn(|| {
            Python::attach(|py| {
                let next = chunks.bind(py).clone().next()?;
                let pulled =
                    next.and_then(|item| record_batches(item.extract::<AnyRecordBatch>()?));
                Some(pulled.map_err(|e| {
                    let message = format!("reading a chunk to write failed: {e}");
                    *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                    Error::InvalidArgument(message)
                }))
            })
        });
        let written = run(py, || self.store.write_chunks(&view, stream, &options));
        if let Some(e) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        let s = written?;
        Ok((s.rows, s.written, s.skipped))
    }

    /// Batch read; returns one record batch `[values | statuses | event timestamps]` and
    /// the number of feature columns, so Python splits it without a second Arrow export.
    #[pyo3(signature = (requests, entities, *, now_micros=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        requests: Vec<(String, Option<Vec<String>>)>,
        entities: PyRecordBatch,
        now_micros: Option<i64>,
    ) -> PyResult<(Bound<'py, PyAny>, usize)> {
        let requests: Vec<ViewRequest> = requests
            .into_iter()
            .map(|(view, features)| ViewRequest { view, features })
            .collect();
        let entities = entities.into_inner();
        let now = now_micros.unwrap_or_else(current_micros);
        let (batch, features) = run(py, || {
            self.store.read(&requests, &entities, now)?.combined()
        })?;
        Ok((PyRecordBatch::new(batch).into_pyarrow(py)?, features))
    }

    /// One-entity read as a dict of feature name to value (`None` unless present); with
    /// `with_status`, also the status bytes and the event time in µs.
    #[pyo3(signature = (view, key, features=None, *, now_micros=None, with_status=false))]
    fn read_one<'py>(
        &self,
        py: Python<'py>,
        view: &str,
        key: Vec<Bound<'py, PyAny>>,
        features: Option<Vec<Bound<'py, PyString>>>,
        now_micros: Option<i64>,
        with_status: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key.iter().map(key_value).collect::<PyResult<Vec<_>>>()?;
        let names: Option<Vec<&str>> = features
            .as_ref()
            .map(|f| f.iter().map(|s| s.to_str()).collect::<PyResult<_>>())
            .transpose()?;
        let now = now_micros.unwrap_or_else(current_micros);
        // One lookup takes less than releasing and retaking the GIL.
        let row = run_holding_gil(py, || {
            self.store.read_one(view, &key, names.as_deref(), now)
        })?;
        let dict = PyDict::new(py);
        for (pos, value) in row.values.into_iter().enumerate() {
            let value = value_to_py(py, value)?;
            match &features {
                Some(f) => dict.set_item(&f[pos], value)?,
                None => dict.set_item(&row.schema.features[row.features[pos]].name, value)?,
            }
        }
        if !with_status {
            return Ok(dict.into_any());
        }
        let statuses: Vec<u8> = row.statuses.into_iter().map(|s| s as u8).collect();
        Ok((dict, PyBytes::new(py, &statuses), row.event_ts)
            .into_pyobject(py)?
            .into_any())
    }

    /// Reads `rows` entities whose join keys are in `columns` (key name to a list of
    /// values) for each view of `plan`; sets `out[name]` to a list of values and
    /// `statuses[name]` to the status bytes of each output column.
    #[pyo3(signature = (plan, columns, rows, out, statuses, *, now_micros=None))]
    #[allow(clippy::too_many_arguments)]
    fn read_into<'py>(
        &self,
        py: Python<'py>,
        plan: &KeyReadPlan,
        columns: &Bound<'py, PyDict>,
        rows: usize,
        out: &Bound<'py, PyDict>,
        statuses: &Bound<'py, PyDict>,
        now_micros: Option<i64>,
    ) -> PyResult<()> {
        let mut keys: Vec<Vec<KeyValue>> = Vec::with_capacity(plan.views.len());
        for view in &plan.views {
            let lists = view
                .join_keys
                .iter()
                .map(|k| key_column(columns, k.bind(py), rows))
                .collect::<PyResult<Vec<_>>>()?;
            let mut view_keys = Vec::with_capacity(rows * lists.len());
            for row in 0..rows {
                for list in &lists {
                    view_keys.push(key_value(&list.get_item(row)?)?);
                }
            }
            keys.push(view_keys);
        }
        let features: Vec<Vec<&str>> = plan
            .views
            .iter()
            .map(|v| v.features.iter().map(String::as_str).collect())
            .collect();
        let requests: Vec<KeysRequest<'_>> = plan
            .views
            .iter()
            .zip(&keys)
            .zip(&features)
            .map(|((v, k), f)| KeysRequest {
                view: &v.view,
                features: Some(f),
                keys: k,
            })
            .collect();
        let now = now_micros.unwrap_or_else(current_micros);
        let reads = if rows * requests.len() < HOLD_GIL_LOOKUPS {
            run_holding_gil(py, || self.store.read_keys(&requests, now))?
        } else {
            run(py, || self.store.read_keys(&requests, now))?
        };
        for (view, mut read) in plan.views.iter().zip(reads) {
            let width = view.names.len();
            for (j, name) in view.names.iter().enumerate() {
                let column = (0..rows).map(|r| {
                    value_to_py(
                        py,
                        std::mem::replace(&mut read.values[r * width + j], Value::Null),
                    )
                });
                let column = column.collect::<PyResult<Vec<_>>>()?;
                out.set_item(name.bind(py), PyList::new(py, column)?)?;
                let status: Vec<u8> = (0..rows)
                    .map(|r| read.statuses[r * width + j] as u8)
                    .collect();
                statuses.set_item(name.bind(py), PyBytes::new(py, &status))?;
            }
        }
        Ok(())
    }

    fn count(&self, py: Python<'_>, view: String) -> PyResult<u64> {
        run(py, || self.store.count(&view))
    }

    fn clear_view(&self, py: Python<'_>, view: String) -> PyResult<usize> {
        run(py, || self.store.clear_view(&view))
    }

    fn delete_view(&self, py: Python<'_>, view: String) -> PyResult<()> {
        run(py, || self.store.delete_view(&view))
    }

    fn drop_all(&self, py: Python<'_>) -> PyResult<()> {
        run(py, || self.store.drop_all())
    }
}

//! `ferrostore._core.VectorCollection`: conversions around `ferrostore_core::vectors`.

use ferrostore_core::vectors::{
    Collection, CollectionConfig, FilterTexts, Include, Where, WhereDocument, WriteBatch, WriteMode,
};
use std::fmt::Write as _;

use ferrostore_core::Error;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::error::{run, run_holding_gil, to_py_err};

fn parse_where(json: Option<&str>) -> ferrostore_core::Result<Option<Where>> {
    json.map(Where::parse_json).transpose()
}

fn parse_where_document(json: Option<&str>) -> ferrostore_core::Result<Option<WhereDocument>> {
    json.map(WhereDocument::parse_json).transpose()
}

/// A `where` or `where_document` filter (a dict) as the JSON text the engine validates,
/// parses, and caches compiled filters by.
fn filter_json(filter: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    let mut out = String::with_capacity(64);
    write_json(filter, &mut out)?;
    Ok(Some(out))
}

fn write_json(value: &Bound<'_, PyAny>, out: &mut String) -> PyResult<()> {
    let py = value.py();
    if value.is_none() {
        out.push_str("null");
    } else if let Ok(flag) = value.cast::<PyBool>() {
        out.push_str(if flag.is_true() { "true" } else { "false" });
    } else if let Ok(text) = value.cast::<PyString>() {
        write_json_string(&text.to_cow()?, out);
    } else if value.is_instance_of::<PyInt>() {
        match value.extract::<i64>() {
            Ok(number) => {
                let _ = write!(out, "{number}");
            }
            // Python's own digits: exact for any size.
            Err(_) => out.push_str(&value.str()?.to_cow()?),
        }
    } else if let Ok(number) = value.cast::<PyFloat>() {
        let number = number.value();
        if !number.is_finite() {
            return Err(to_py_err(
                py,
                &Error::InvalidArgument(format!("filter value {number}: expected a finite number")),
            ));
        }
        // Debug prints the shortest digits that read back the same value, as JSON allows.
        let _ = write!(out, "{number:?}");
    } else if let Ok(dict) = value.cast::<PyDict>() {
        out.push('{');
        for (i, (key, item)) in dict.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let Ok(key) = key.cast::<PyString>() else {
                return Err(to_py_err(
                    py,
                    &Error::InvalidArgument(format!("filter key {key}: expected a string")),
                ));
            };
            write_json_string(&key.to_cow()?, out);
            out.push(':');
            write_json(&item, out)?;
        }
        out.push('}');
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        out.push('[');
        for (i, item) in value.try_iter()?.enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json(&item?, out)?;
        }
        out.push(']');
    } else if let Some(number) = numpy_number(value)? {
        write_json(&number, out)?;
    } else {
        return Err(to_py_err(
            py,
            &Error::InvalidArgument(format!(
                "filter value {value} of type {}: expected a str, int, float, bool, list or dict",
                value.get_type().name()?
            )),
        ));
    }
    Ok(())
}

/// A NumPy integer or float scalar as a Python int or float (`None` for anything else).
fn numpy_number<'py>(value: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let kind = value.get_type();
    if kind.module()?.to_cow()? != "numpy" {
        return Ok(None);
    }
    let name = kind.name()?;
    let name = name.to_cow()?;
    if name.starts_with("int") || name.starts_with("uint") {
        Ok(Some(value.call_method0("__int__")?))
    } else if name.starts_with("float") {
        Ok(Some(value.call_method0("__float__")?))
    } else {
        Ok(None)
    }
}

fn write_json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The array's values in row-major order, copied while the GIL is held (Python may write to
/// the array once it is released), so no borrow of it needs tracking. One memcpy when it is
/// row-major contiguous (as the Python API passes it).
fn owned_values(array: &Bound<'_, PyArray2<f32>>) -> Vec<f32> {
    // `to_vec` also takes column-major arrays, whose order is not the rows'.
    match array.to_vec() {
        Ok(values) if array.is_c_contiguous() => values,
        _ => array.to_owned_array().iter().copied().collect(),
    }
}

fn matrix<'py>(
    py: Python<'py>,
    values: Vec<f32>,
    dim: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let rows = values.len() / dim.max(1);
    PyArray1::from_vec(py, values).reshape([rows, dim])
}

/// Results of `get`: ids, embeddings, documents, metadata JSON.
type GetTuple<'py> = (
    Vec<String>,
    Option<Bound<'py, PyArray2<f32>>>,
    Vec<Option<String>>,
    Vec<Option<String>>,
);
/// Results of `query`, one list entry per query; what was not included is `None` (a batch
/// allocates no empty lists for it).
type QueryTuple<'py> = (
    Vec<Vec<String>>,
    Vec<Vec<f32>>,
    Option<Vec<Vec<Option<String>>>>,
    Option<Vec<Vec<Option<String>>>>,
    Option<Vec<Bound<'py, PyArray2<f32>>>>,
);

/// A vector collection folder; see `ferrostore/_core.pyi`.
#[pyclass(frozen, module = "ferrostore._core")]
pub struct VectorCollection {
    inner: Collection,
}

#[pymethods]
impl VectorCollection {
    #[new]
    #[pyo3(signature = (path, *, dim, space="cosine".to_owned(), m=16, ef_construction=128, ef_search=64, quantization=None, map_size=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        dim: Option<usize>,
        space: String,
        m: usize,
        ef_construction: usize,
        ef_search: usize,
        quantization: Option<String>,
        map_size: Option<usize>,
    ) -> PyResult<Self> {
        let config = dim.map(|dim| {
            let quantization = quantization
                .as_deref()
                .unwrap_or(CollectionConfig::default_quantization(&space));
            CollectionConfig::new(dim, &space, m, ef_construction, ef_search, quantization)
        });
        let inner = run(py, || Collection::open(&path, config, map_size))?;
        Ok(VectorCollection { inner })
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.config().dim
    }

    #[getter]
    fn space(&self) -> String {
        self.inner.config().space.clone()
    }

    #[getter]
    fn quantization(&self) -> String {
        self.inner.config().quantization.clone()
    }

    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.inner.path().to_path_buf()
    }

    fn count(&self, py: Python<'_>) -> PyResult<usize> {
        run(py, || self.inner.count())
    }

    #[pyo3(signature = (ids, embeddings, documents, metadatas, *, mode))]
    fn write(
        &self,
        py: Python<'_>,
        ids: Vec<String>,
        embeddings: Option<Bound<'_, PyArray2<f32>>>,
        documents: Option<Vec<Option<String>>>,
        metadatas: Option<String>,
        mode: &str,
    ) -> PyResult<()> {
        let metadatas = metadatas
            .map(|json| split_json_array(&json))
            .transpose()
            .map_err(|e| crate::error::to_py_err(py, &e))?;
        let vectors = match embeddings {
            Some(e) => {
                let shape = e.shape().to_vec();
                if shape[1] != self.inner.config().dim || shape[0] != ids.len() {
                    return Err(crate::error::to_py_err(
                        py,
                        &Error::InvalidArgument(format!(
                            "embeddings of shape ({}, {}): expected ({}, {}) for {} ids",
                            shape[0],
                            shape[1],
                            ids.len(),
                            self.inner.config().dim,
                            ids.len()
                        )),
                    ));
                }
                Some(owned_values(&e))
            }
            None => None,
        };
        let batch = WriteBatch {
            ids,
            vectors,
            documents,
            metadatas,
        };
        run(py, || {
            let mode = match mode {
                "add" => WriteMode::Add,
                "upsert" => WriteMode::Upsert,
                "update" => WriteMode::Update,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "mode '{other}': expected add, upsert or update"
                    )))
                }
            };
            self.inner.write(batch, mode)
        })
    }

    #[pyo3(signature = (ids=None, r#where=None, where_document=None))]
    fn delete(
        &self,
        py: Python<'_>,
        ids: Option<Vec<String>>,
        r#where: Option<Bound<'_, PyAny>>,
        where_document: Option<Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let r#where = filter_json(r#where.as_ref())?;
        let where_document = filter_json(where_document.as_ref())?;
        run(py, || {
            let w = parse_where(r#where.as_deref())?;
            let wd = parse_where_document(where_document.as_deref())?;
            self.inner.delete(ids.as_deref(), w.as_ref(), wd.as_ref())
        })
    }

    #[pyo3(signature = (ids=None, r#where=None, where_document=None, limit=None, offset=0, include_embeddings=false))]
    #[allow(clippy::too_many_arguments)]
    fn get<'py>(
        &self,
        py: Python<'py>,
        ids: Option<Vec<String>>,
        r#where: Option<Bound<'py, PyAny>>,
        where_document: Option<Bound<'py, PyAny>>,
        limit: Option<usize>,
        offset: usize,
        include_embeddings: bool,
    ) -> PyResult<GetTuple<'py>> {
        let r#where = filter_json(r#where.as_ref())?;
        let where_document = filter_json(where_document.as_ref())?;
        let out = run(py, || {
            let w = parse_where(r#where.as_deref())?;
            let wd = parse_where_document(where_document.as_deref())?;
            self.inner.get(
                ids.as_deref(),
                w.as_ref(),
                wd.as_ref(),
                limit,
                offset,
                include_embeddings,
            )
        })?;
        let dim = self.inner.config().dim;
        let vectors = out.vectors.map(|v| matrix(py, v, dim)).transpose()?;
        Ok((out.ids, vectors, out.documents, out.metadatas))
    }

    #[pyo3(signature = (
        queries, n_results, r#where=None, where_document=None, include_embeddings=false,
        include_documents=true, include_metadatas=true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn query<'py>(
        &self,
        py: Python<'py>,
        queries: Bound<'py, PyArray2<f32>>,
        n_results: usize,
        r#where: Option<Bound<'py, PyAny>>,
        where_document: Option<Bound<'py, PyAny>>,
        include_embeddings: bool,
        include_documents: bool,
        include_metadatas: bool,
    ) -> PyResult<QueryTuple<'py>> {
        let r#where = filter_json(r#where.as_ref())?;
        let where_document = filter_json(where_document.as_ref())?;
        let flat = owned_values(&queries);
        let query_dim = queries.shape()[1];
        if query_dim != self.inner.config().dim {
            return Err(crate::error::to_py_err(
                py,
                &Error::InvalidArgument(format!(
                    "Collection expecting embedding with dimension of {}, got {query_dim}",
                    self.inner.config().dim
                )),
            ));
        }
        let results = run(py, || {
            self.inner.query(
                &flat,
                n_results,
                FilterTexts {
                    where_: r#where.as_deref(),
                    where_document: where_document.as_deref(),
                },
                Include {
                    documents: include_documents,
                    metadatas: include_metadatas,
                    vectors: include_embeddings,
                },
            )
        })?;
        let dim = self.inner.config().dim;
        let n = results.len();
        let mut out: QueryTuple<'py> = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            include_documents.then(|| Vec::with_capacity(n)),
            include_metadatas.then(|| Vec::with_capacity(n)),
            include_embeddings.then(|| Vec::with_capacity(n)),
        );
        for r in results {
            out.0.push(r.ids);
            out.1.push(r.distances);
            if let Some(all) = out.2.as_mut() {
                all.push(r.documents);
            }
            if let Some(all) = out.3.as_mut() {
                all.push(r.metadatas);
            }
            if let (Some(all), Some(v)) = (out.4.as_mut(), r.vectors) {
                all.push(matrix(py, v, dim)?);
            }
        }
        Ok(out)
    }

    fn set_search_ef(&self, py: Python<'_>, ef: usize) -> PyResult<()> {
        run(py, || self.inner.set_search_ef(ef))
    }

    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        run(py, || self.inner.checkpoint())
    }

    fn is_deleted(&self) -> bool {
        self.inner.is_deleted()
    }

    fn checkpoint_if_behind(&self, py: Python<'_>) -> PyResult<bool> {
        run(py, || self.inner.checkpoint_if_behind())
    }

    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        run(py, || self.inner.compact())
    }
}

/// The elements of a JSON array as their own JSON texts (`null` as `None`), left as written:
/// Python encodes a batch's metadata in one call, the engine stores one text per record.
fn split_json_array(json: &str) -> Result<Vec<Option<String>>, Error> {
    let items: Vec<Option<Box<serde_json::value::RawValue>>> =
        serde_json::from_str(json).map_err(|e| {
            Error::InvalidArgument(format!("metadatas: expected a JSON array of objects: {e}"))
        })?;
    Ok(items
        .into_iter()
        .map(|item| item.map(|raw| raw.get().to_string()))
        .collect())
}

/// Validates `where` and `where_document` filters as the engine would (for a collection that
/// has no engine yet); see `ferrostore/_core.pyi`.
#[pyfunction]
#[pyo3(signature = (r#where=None, where_document=None))]
pub fn check_filters(
    py: Python<'_>,
    r#where: Option<Bound<'_, PyAny>>,
    where_document: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let r#where = filter_json(r#where.as_ref())?;
    let where_document = filter_json(where_document.as_ref())?;
    run_holding_gil(py, || {
        parse_where(r#where.as_deref())?;
        parse_where_document(where_document.as_deref())?;
        Ok(())
    })
}

/// Marks the collection in `path` deleted for every process that has it open; see
/// `ferrostore/_core.pyi`.
#[pyfunction]
pub fn mark_collection_deleted(py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
    run(py, || ferrostore_core::vectors::mark_deleted(&path))
}

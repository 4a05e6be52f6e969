//! Vector collections: records in LMDB as the source of truth, an HNSW graph (usearch) as
//! a derived, checkpointed index, and metadata indexes for Chroma's filters.
//!
//! Every mutation takes a new sequence number: a record is stored under its sequence, the
//! `ids` database points each id to its live sequence, and replaced or deleted sequences
//! are written to `tombstones` keyed by the version (write counter) that removed them.
//! The graph file is named after the last sequence it holds; on open, or when another
//! process has written, the in-memory state catches up from the records and tombstones
//! after what it has applied. A crash therefore loses nothing that was committed.

mod deletion;
pub mod filter;
mod graph;
pub mod hnsw;
mod subset;

use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use heed::types::{Bytes, Str};
use heed::{Database, Env, EnvOpenOptions, RoTxn};
use rayon::prelude::*;
use serde_json::Value as Json;
use usearch::{MetricKind, ScalarKind};

pub use filter::{Bitset, MetaValue, MetadataIndex, Where, WhereDocument};
use graph::Graph;
pub use graph::{OWN_GRAPH, USEARCH_GRAPH};
use hnsw::Packed;
use subset::{DistanceRule, SubsetRows};

use crate::fxhash::FxMap;
use crate::{Error, Result};
pub use deletion::mark_deleted;
use deletion::DeletionMark;

/// Distance spaces, with Chroma's distances: squared l2, `1 - dot`, `1 - cos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    L2,
    Ip,
    Cosine,
}

impl Space {
    /// Parses `l2`, `ip` or `cosine`.
    pub fn parse(s: &str) -> Result<Space> {
        match s {
            "l2" => Ok(Space::L2),
            "ip" => Ok(Space::Ip),
            "cosine" => Ok(Space::Cosine),
            other => Err(Error::InvalidArgument(format!(
                "space '{other}': expected 'l2', 'ip' or 'cosine'"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Space::L2 => "l2",
            Space::Ip => "ip",
            Space::Cosine => "cosine",
        }
    }

    fn metric(self) -> MetricKind {
        match self {
            Space::L2 => MetricKind::L2sq,
            Space::Ip => MetricKind::IP,
            Space::Cosine => MetricKind::Cos,
        }
    }

    /// The distance of `a` and `b`, as the index computes it (with the CPU's fastest kernels).
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Space::L2 => hnsw::l2_f32(a, b),
            Space::Ip => 1.0 - hnsw::dot_f32(a, b),
            Space::Cosine => {
                let denom = (hnsw::dot_f32(a, a) * hnsw::dot_f32(b, b)).sqrt();
                if denom == 0.0 {
                    1.0
                } else {
                    1.0 - hnsw::dot_f32(a, b) / denom
                }
            }
        }
    }
}

/// Sums `f(a[i], b[i])` over eight independent accumulators, which the compiler turns into
/// SIMD lanes.
#[inline]
fn lanes(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| f(*x, *y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += f(x[i], y[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scales `v` to unit length (a zero vector stays zero).
fn normalize(v: &mut [f32]) {
    let norm = lanes(v, v, |x, y| x * y).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Index parameters of a collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CollectionConfig {
    pub dim: usize,
    pub space: String,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// `f32`, `f16`, `bf16` or `i8`: how the graph stores vectors (records keep float32).
    pub quantization: String,
    /// Whether a cosine graph holds unit vectors under inner product (one dot product per
    /// distance instead of three). Collections stored before this field keep their cosine
    /// graph.
    #[serde(default)]
    pub normalized_graph: bool,
    /// The graph implementation, [`OWN_GRAPH`] or [`USEARCH_GRAPH`] (collections stored
    /// before this field keep usearch).
    #[serde(default = "usearch_graph")]
    pub graph: String,
}

fn usearch_graph() -> String {
    USEARCH_GRAPH.to_string()
}

impl CollectionConfig {
    /// A configuration for a new collection.
    pub fn new(
        dim: usize,
        space: &str,
        m: usize,
        ef_construction: usize,
        ef_search: usize,
        quantization: &str,
    ) -> CollectionConfig {
        CollectionConfig {
            dim,
            space: space.to_string(),
            m,
            ef_construction,
            ef_search,
            quantization: quantization.to_string(),
            normalized_graph: true,
            // Our own graph holds float32, and float16 unit vectors; usearch the rest.
            graph: if quantization == "f32" || (quantization == "f16" && space == "cosine") {
                OWN_GRAPH
            } else {
                USEARCH_GRAPH
            }
            .to_string(),
        }
    }

    /// The graph's scalar type when none is chosen: a cosine graph holds unit vectors, where
    /// float16's 11-bit precision costs no range and halves the graph; l2 and ip graphs hold
    /// raw values, which float16 cannot range over, so they stay float32. Distances returned
    /// are computed from the float32 records either way. Both are held by ferrostore's own
    /// graph (bfloat16 and int8, still accepted, by usearch).
    pub fn default_quantization(space: &str) -> &'static str {
        if space == "cosine" {
            "f16"
        } else {
            "f32"
        }
    }

    /// Whether graph vectors and queries are scaled to unit length.
    fn normalizes(&self) -> bool {
        self.normalized_graph && self.space == "cosine"
    }

    /// The vector as the graph holds it.
    fn graph_vector(&self, mut v: Vec<f32>) -> Vec<f32> {
        if self.normalizes() {
            normalize(&mut v);
        }
        v
    }

    fn validate(&self) -> Result<Space> {
        let space = Space::parse(&self.space)?;
        if self.dim == 0 || self.dim > 65_536 {
            return Err(Error::InvalidArgument(format!(
                "dimension {}: expected 1 to 65536",
                self.dim
            )));
        }
        for (name, v, lo, hi) in [
            ("M", self.m, 2, 512),
            ("ef_construction", self.ef_construction, 1, 100_000),
            ("ef_search", self.ef_search, 1, 100_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(Error::InvalidArgument(format!(
                    "{name}={v}: expected {lo} to {hi}"
                )));
            }
        }
        quantization(&self.quantization)?;
        if self.graph != OWN_GRAPH && self.graph != USEARCH_GRAPH {
            return Err(Error::InvalidArgument(format!(
                "graph '{}': expected '{OWN_GRAPH}' or '{USEARCH_GRAPH}'",
                self.graph
            )));
        }
        Ok(space)
    }
}

fn quantization(q: &str) -> Result<ScalarKind> {
    match q {
        "f32" => Ok(ScalarKind::F32),
        "f16" => Ok(ScalarKind::F16),
        "bf16" => Ok(ScalarKind::BF16),
        "i8" => Ok(ScalarKind::I8),
        other => Err(Error::InvalidArgument(format!(
            "quantization '{other}': expected 'f32', 'f16', 'bf16' or 'i8'"
        ))),
    }
}

/// How a write treats ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every id must be new.
    Add,
    /// New ids are added, existing ones replaced.
    Upsert,
    /// Every id must exist; absent fields keep their stored values.
    Update,
}

/// A batch to write: parallel lists, `None` for a column not given.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub ids: Vec<String>,
    /// Row-major `ids.len() x dim`.
    pub vectors: Option<Vec<f32>>,
    pub documents: Option<Vec<Option<String>>>,
    /// JSON objects of flat metadata; `None` entries mean no metadata.
    pub metadatas: Option<Vec<Option<String>>>,
}

/// Records returned by `get`, in insertion order.
#[derive(Debug, Clone, Default)]
pub struct GetResult {
    pub ids: Vec<String>,
    pub vectors: Option<Vec<f32>>,
    pub documents: Vec<Option<String>>,
    pub metadatas: Vec<Option<String>>,
}

/// What a query returns besides ids and distances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Include {
    pub documents: bool,
    pub metadatas: bool,
    pub vectors: bool,
}

/// The nearest records of one query, nearest first; `documents` and `metadatas` are empty
/// unless included.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub ids: Vec<String>,
    pub distances: Vec<f32>,
    pub documents: Vec<Option<String>>,
    pub metadatas: Vec<Option<String>>,
    pub vectors: Option<Vec<f32>>,
}

/// A committed record to apply to the in-memory state.
struct Applied {
    seq: u64,
    position: u64,
    metadata: Option<Vec<(String, MetaValue)>>,
}

/// Vectors read back from the records on their way into the graph, as the graph holds them,
/// in one buffer (one allocation for a chunk, not one per vector).
struct GraphRows {
    dim: usize,
    normalize: bool,
    keys: Vec<u64>,
    values: Vec<f32>,
}

impl GraphRows {
    fn new(config: &CollectionConfig, capacity: usize) -> Self {
        GraphRows {
            dim: config.dim,
            normalize: config.normalizes(),
            keys: Vec::with_capacity(capacity),
            values: Vec::with_capacity(capacity * config.dim),
        }
    }

    /// Adds `seq`'s vector, given as float32 values.
    fn push(&mut self, seq: u64, vector: &[f32]) {
        let start = self.values.len();
        self.values.extend_from_slice(vector);
        self.finish(seq, start);
    }

    /// Adds `seq`'s vector, given as stored (little-endian float32 bytes).
    fn push_stored(&mut self, seq: u64, vector: &[u8]) {
        let start = self.values.len();
        self.values.extend(
            vector
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        self.finish(seq, start);
    }

    fn finish(&mut self, seq: u64, start: usize) {
        if self.normalize {
            normalize(&mut self.values[start..]);
        }
        self.keys.push(seq);
    }

    fn items(&self) -> impl Iterator<Item = (u64, &[f32])> {
        self.keys
            .iter()
            .copied()
            .zip(self.values.chunks_exact(self.dim))
    }
}

struct State {
    graph: Graph,
    /// Each live sequence's insertion order (kept when the record is updated or upserted).
    /// Memory keeps nothing else per record: id, document, metadata and vector are read from
    /// the LMDB pages when asked for.
    slots: FxMap<u64, u64>,
    live: Bitset,
    /// Postings of removed records stay until compaction: every filter is intersected with
    /// `live`.
    metadata: MetadataIndex,
    applied_seq: u64,
    applied_version: u64,
    checkpoint_seq: u64,
    removed_in_graph: usize,
    /// Whether the records were loaded once (the first catch-up reads everything).
    loaded: bool,
}

/// A collection folder. Thread-safe; one writer at a time (also across processes).
pub struct Collection {
    env: Env,
    path: PathBuf,
    config: CollectionConfig,
    space: Space,
    records: Database<Bytes, Bytes>,
    ids: Database<Str, Bytes>,
    tombstones: Database<Bytes, Bytes>,
    meta: Database<Str, Bytes>,
    state: RwLock<State>,
    writer: Mutex<()>,
    filters: Mutex<FilterCache>,
    /// Whether the collection was deleted, by any process.
    deletion: DeletionMark,
}

/// Filters evaluated at one applied version, by their texts: applications repeat the same
/// filter across queries, and a 50% range filter costs more to evaluate than to search. A
/// filter found here is neither parsed nor evaluated again.
#[derive(Default)]
struct FilterCache {
    version: u64,
    entries: Vec<(FilterKey, Arc<Selection>)>,
}

/// The texts of a cached `where` and `where_document`.
type FilterKey = (Option<String>, Option<String>);

/// A query's `where` and `where_document` filters, each optional, as JSON texts: the texts
/// key the collection's cache of filter matches, and are parsed only when it misses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterTexts<'a> {
    /// The metadata filter (Chroma's `where`).
    pub where_: Option<&'a str>,
    /// The document filter (Chroma's `where_document`).
    pub where_document: Option<&'a str>,
}

impl FilterTexts<'_> {
    fn is_key(&self, key: &FilterKey) -> bool {
        key.0.as_deref() == self.where_ && key.1.as_deref() == self.where_document
    }
}

/// A filter's matches and, once the cached filter is scored exactly again, their graph
/// vectors as int8 codes in one block (see [`PACKED_FILTER_BYTES`]).
struct Selection {
    set: Bitset,
    /// `set.len()`, counted once.
    matches: usize,
    /// Whether the filter cache handed this selection out again.
    reused: AtomicBool,
    packed: OnceLock<Option<Packed>>,
    /// The packed rows' float32 vectors and ids, read once the codes are packed.
    subset: OnceLock<Option<SubsetRows>>,
}

impl Selection {
    /// Bytes held by the packed codes and the subset rows.
    fn bytes(&self) -> usize {
        let packed = self.packed.get().and_then(Option::as_ref);
        let subset = self.subset.get().and_then(Option::as_ref);
        packed.map_or(0, Packed::bytes) + subset.map_or(0, SubsetRows::bytes)
    }
}

/// The cached filters of a collection hold at most this many bytes of packed vectors: a
/// repeated filter scored exactly reads its matches as one stream of int8 codes. On 50k
/// MiniLM rows (a 10% filter packs to 2.4 MB), one query per call, against the float16 rows
/// packed before: 129 against 250 us at 10% selectivity, 62 against 92 us at 4%.
const PACKED_FILTER_BYTES: usize = 32 << 20;

/// Filters kept per collection; the oldest is dropped first.
const FILTER_CACHE_SIZE: usize = 16;

const CONFIG: &str = "config";
const NEXT_SEQ: &str = "next_seq";
const VERSION: &str = "version";
/// Writes of at least this many records return the freed heap to the system.
const RELEASE_AFTER: usize = 1024;
/// Records applied to the in-memory state at a time when loading.
const APPLY_CHUNK: usize = 8192;
/// A filtered query with at most this many matches scores them exactly.
const EXACT_LIMIT: usize = 4096;
/// Above [`EXACT_LIMIT`], a filtered query scores its `m` matches exactly (about `m`
/// distances) while that costs less than walking the graph past non-matches (about
/// `WALK_COST * live / m`: a walk meets one match in `live / m` nodes), i.e. while
/// `m * m <= WALK_COST * live`. Measured on 50k MiniLM rows (two cores, one query per call,
/// a repeated filter, so its matches are packed as int8 codes), exact against walk: 186
/// against 324 us at 16% selectivity, 255 against 297 us at 20%, 312 against 218 us at 30%.
const WALK_COST: f64 = 2000.0;
/// A packed selection's int8 estimates keep this many candidates per wanted hit for the
/// rescoring from the graph's vectors, and at least [`MIN_PACKED_CANDIDATES`]. The estimates'
/// error (about 1e-3 on a cosine distance for 384-d unit vectors) is far below the usual gap
/// between a query's 20th and 80th nearest, so the rescored top stays the exact one.
const PACKED_CANDIDATES_PER_HIT: usize = 4;
const MIN_PACKED_CANDIDATES: usize = 64;
/// Inserting a record into the graph again costs about this many times what saving it in a
/// checkpoint costs: on 50k MiniLM rows (float16 graph), reopening without a checkpoint
/// rebuilt the graph in 3.9 s (78 us a record) and the checkpoint saved in 56 ms (1.1 us).
/// Rounded down, so a checkpoint is saved rather than not when in doubt.
const REPLAY_COST_PER_SAVE: u64 = 64;
/// Exact scoring of at least this many rows for one query is split over every core.
const PARALLEL_EXACT_ROWS: usize = 4096;
/// The same for packed rows, cheaper to score: on 50k MiniLM rows, two cores, one part per
/// core took 138 us against 123 on one (5,043 rows), 185 against 189 (8,104 rows).
const PARALLEL_PACKED_ROWS: usize = 16_384;

/// Whether scoring `matches` of `live` records exactly costs less than a filtered walk
/// (see [`WALK_COST`]).
fn exact_is_cheaper(matches: usize, live: usize) -> bool {
    matches <= EXACT_LIMIT || (matches as f64).powi(2) <= WALK_COST * live as f64
}

fn lmdb<'a>(path: &'a Path, doing: &'static str) -> impl Fn(heed::Error) -> Error + 'a {
    move |e| Error::lmdb(e, doing, path)
}

fn usearch_err(e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("vector index failed: {e}"))
}

fn get_u64(db: &Database<Str, Bytes>, txn: &RoTxn<'_>, key: &str, path: &Path) -> Result<u64> {
    match db.get(txn, key).map_err(lmdb(path, "reading counters"))? {
        Some(b) => Ok(u64::from_le_bytes(
            b.try_into()
                .map_err(|_| Error::Storage("corrupt counter".into()))?,
        )),
        None => Ok(0),
    }
}

/// Encodes a record (the layout [`StoredRecord::parse`] reads) into `out`, replacing what
/// it held: one buffer serves a whole batch.
fn encode_record(
    out: &mut Vec<u8>,
    position: u64,
    id: &str,
    vector: &[f32],
    document: Option<&str>,
    metadata_json: Option<&str>,
) {
    out.clear();
    out.extend_from_slice(&position.to_le_bytes());
    out.extend_from_slice(&(id.len() as u32).to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    for v in vector {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut opt = |s: Option<&str>| match s {
        Some(s) => {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
    };
    opt(document);
    opt(metadata_json);
}

fn corrupt() -> Error {
    Error::Storage("corrupt vector record".into())
}

/// A record as stored, borrowed from the LMDB page: its insertion position (kept across
/// updates), id, float32 vector bytes, document and metadata JSON.
struct StoredRecord<'a> {
    position: u64,
    id: &'a str,
    vector: &'a [u8],
    document: Option<&'a str>,
    metadata_json: Option<&'a str>,
}

impl StoredRecord<'_> {
    /// Decodes a stored record without copying it.
    fn parse(bytes: &[u8], dim: usize) -> Result<StoredRecord<'_>> {
        let mut pos = 0;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = bytes.get(pos..pos + n).ok_or_else(corrupt)?;
            pos += n;
            Ok(s)
        };
        let position = u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt())?);
        let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt())?) as usize;
        let id = std::str::from_utf8(take(len)?).map_err(|_| corrupt())?;
        let vector = take(dim * 4)?;
        let mut opt = || -> Result<Option<&str>> {
            let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt())?);
            if len == u32::MAX {
                return Ok(None);
            }
            Ok(Some(
                std::str::from_utf8(take(len as usize)?).map_err(|_| corrupt())?,
            ))
        };
        let document = opt()?;
        let metadata_json = opt()?;
        Ok(StoredRecord {
            position,
            id,
            vector,
            document,
            metadata_json,
        })
    }

    fn vector(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.vector.len() / 4);
        self.extend_vector(&mut out);
        out
    }

    /// The stored float32 vector's values.
    fn vector_values(&self) -> impl Iterator<Item = f32> + '_ {
        self.vector
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }

    fn extend_vector(&self, out: &mut Vec<f32>) {
        out.extend(self.vector_values());
    }
}

/// What a write keeps of the record it replaces.
struct OldRecord {
    position: u64,
    /// Read only when the write gives no vector.
    vector: Option<Vec<f32>>,
    document: Option<String>,
    metadata_json: Option<String>,
}

/// Keys to set (`Some`) or delete (`None`).
type MetadataPatch = Vec<(String, Option<MetaValue>)>;

/// Parses a metadata patch: flat values, or null to delete a key.
fn parse_metadata_patch(json: &str) -> Result<MetadataPatch> {
    let value: Json = serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("metadata {json:?} is not valid JSON: {e}")))?;
    let Json::Object(obj) = value else {
        return Err(Error::InvalidArgument(format!(
            "metadata {json}: expected a dict"
        )));
    };
    obj.into_iter()
        .map(|(k, v)| {
            if v.is_null() {
                return Ok((k, None));
            }
            let m = MetaValue::from_json(&v).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "metadata value {v} of key '{k}': expected a string, integer, float, boolean or null"
                ))
            })?;
            Ok((k, Some(m)))
        })
        .collect()
}

/// Parses a flat metadata JSON object.
pub fn parse_metadata(json: &str) -> Result<Vec<(String, MetaValue)>> {
    let value: Json = serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("metadata {json:?} is not valid JSON: {e}")))?;
    let Json::Object(obj) = value else {
        return Err(Error::InvalidArgument(format!(
            "metadata {json}: expected a dict"
        )));
    };
    obj.into_iter()
        .map(|(k, v)| {
            let m = MetaValue::from_json(&v).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "metadata value {v} of key '{k}': expected a string, integer, float or boolean"
                ))
            })?;
            Ok((k, m))
        })
        .collect()
}

fn metadata_to_json(metadata: &[(String, MetaValue)]) -> String {
    let obj: serde_json::Map<String, Json> = metadata
        .iter()
        .map(|(k, v)| {
            let j = match v {
                MetaValue::Str(s) => Json::String(s.clone()),
                MetaValue::Int(i) => Json::from(*i),
                MetaValue::Float(f) => {
                    serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number)
                }
                MetaValue::Bool(b) => Json::Bool(*b),
            };
            (k.clone(), j)
        })
        .collect();
    Json::Object(obj).to_string()
}

impl Collection {
    /// Opens (creating if needed) the collection in folder `path`.
    ///
    /// `config` is required to create one; for an existing one it must match the stored
    /// dimension and space (`None` reads the stored configuration).
    ///
    /// # Errors
    /// `InvalidArgument` for a bad configuration, `SchemaMismatch` when it differs from the
    /// stored one, `NotFound` when `config` is `None` and nothing is stored, `Storage` for
    /// unusable paths.
    pub fn open(
        path: impl AsRef<Path>,
        config: Option<CollectionConfig>,
        map_size: Option<usize>,
    ) -> Result<Collection> {
        let path = path.as_ref().to_path_buf();
        if path.is_file() {
            return Err(Error::Storage(format!(
                "collection path '{}' is a file: expected a directory",
                path.display()
            )));
        }
        let records_dir = path.join("records");
        std::fs::create_dir_all(&records_dir).map_err(|e| {
            Error::Storage(format!(
                "cannot create collection folder '{}': {e}",
                path.display()
            ))
        })?;
        let mut options = EnvOpenOptions::new();
        options
            .map_size(map_size.unwrap_or(64 << 30))
            .max_dbs(8)
            .max_readers(1022);
        // SAFETY: the environment is opened once per Collection and only modified through
        // LMDB; the Python layer keeps one Collection per folder and process.
        let env = unsafe { options.open(&records_dir) }.map_err(|e| match e {
            heed::Error::EnvAlreadyOpened => Error::Conflict(format!(
                "collection at '{}' is already open in this process: use that handle",
                path.display()
            )),
            other => Error::lmdb(other, "opening", &path),
        })?;
        env.clear_stale_readers().map_err(lmdb(&path, "opening"))?;
        let mut wtxn = env.write_txn().map_err(lmdb(&path, "opening"))?;
        let records = env
            .create_database(&mut wtxn, Some("records"))
            .map_err(lmdb(&path, "opening"))?;
        let ids = env
            .create_database(&mut wtxn, Some("ids"))
            .map_err(lmdb(&path, "opening"))?;
        let tombstones = env
            .create_database(&mut wtxn, Some("tombstones"))
            .map_err(lmdb(&path, "opening"))?;
        let meta: Database<Str, Bytes> = env
            .create_database(&mut wtxn, Some("meta"))
            .map_err(lmdb(&path, "opening"))?;
        let stored: Option<CollectionConfig> =
            match meta.get(&wtxn, CONFIG).map_err(lmdb(&path, "opening"))? {
                Some(b) => Some(
                    serde_json::from_slice(b)
                        .map_err(|e| Error::Storage(format!("corrupt collection config: {e}")))?,
                ),
                None => None,
            };
        let config = match (stored, config) {
            (Some(stored), None) => stored,
            (Some(stored), Some(given)) => {
                if stored.dim != given.dim || stored.space != given.space {
                    return Err(Error::SchemaMismatch(format!(
                        "collection at '{}' has dimension {} and space '{}': opened with dimension {} and space '{}'",
                        path.display(), stored.dim, stored.space, given.dim, given.space
                    )));
                }
                // The search breadth is the opener's: it is not part of the stored graph,
                // and it changes after creation (Chroma's `hnsw:search_ef` through modify).
                CollectionConfig {
                    ef_search: given.ef_search,
                    ..stored
                }
            }
            (None, Some(given)) => {
                given.validate()?;
                let bytes =
                    serde_json::to_vec(&given).map_err(|e| Error::Storage(e.to_string()))?;
                meta.put(&mut wtxn, CONFIG, &bytes)
                    .map_err(lmdb(&path, "opening"))?;
                given
            }
            (None, None) => {
                return Err(Error::NotFound(format!(
                    "no collection at '{}'",
                    path.display()
                )));
            }
        };
        wtxn.commit().map_err(lmdb(&path, "opening"))?;
        let space = config.validate()?;
        let deletion = DeletionMark::open(&path)?;
        let state = State {
            graph: Graph::new(&config, space)?,
            slots: FxMap::default(),
            live: Bitset::default(),
            metadata: MetadataIndex::default(),
            applied_seq: 0,
            applied_version: 0,
            checkpoint_seq: 0,
            removed_in_graph: 0,
            loaded: false,
        };
        let collection = Collection {
            env,
            path,
            config,
            space,
            records,
            ids,
            tombstones,
            meta,
            state: RwLock::new(state),
            writer: Mutex::new(()),
            filters: Mutex::new(FilterCache::default()),
            deletion,
        };
        collection.load_checkpoint()?;
        collection.refresh()?;
        Ok(collection)
    }

    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// Whether the collection was deleted ([`mark_deleted`]) by any process since it was
    /// opened: one load from memory, cheap enough for every call.
    pub fn is_deleted(&self) -> bool {
        self.deletion.is_marked()
    }

    /// `NotFound` when the collection was deleted, or its folder removed by other means:
    /// nothing is acknowledged into a removed folder.
    fn require_present(&self) -> Result<()> {
        if self.deletion.is_gone() {
            return Err(Error::NotFound(format!(
                "collection at '{}' was deleted",
                self.path.display()
            )));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_err() -> Error {
        Error::Storage("collection lock poisoned by a panic".into())
    }

    fn graph_files(&self) -> Vec<(u64, PathBuf)> {
        let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let seq = name
                    .strip_prefix("graph-")?
                    .strip_suffix(Graph::suffix(&self.config))?
                    .parse()
                    .ok()?;
                Some((seq, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Loads the newest graph checkpoint, if any; records after it are caught up by
    /// `refresh`, which also removes the checkpoint's tombstoned keys.
    fn load_checkpoint(&self) -> Result<()> {
        let Some((seq, file)) = self.graph_files().pop() else {
            return Ok(());
        };
        let mut state = self.state.write().map_err(|_| Self::lock_err())?;
        if state.graph.load(&self.config, &file).is_err() {
            // A damaged checkpoint is only a cache: rebuild from the records instead.
            state.graph = Graph::new(&self.config, self.space)?;
            return Ok(());
        }
        state.checkpoint_seq = seq;
        Ok(())
    }

    /// Applies what other writers (or this one) committed since the last refresh.
    pub fn refresh(&self) -> Result<()> {
        let rtxn = self.env.read_txn().map_err(lmdb(&self.path, "reading"))?;
        let version = get_u64(&self.meta, &rtxn, VERSION, &self.path)?;
        {
            let state = self.state.read().map_err(|_| Self::lock_err())?;
            if state.loaded && state.applied_version == version {
                return Ok(());
            }
        }
        let mut state = self.state.write().map_err(|_| Self::lock_err())?;
        self.catch_up(&mut state, &rtxn, version)
    }

    fn catch_up(&self, state: &mut State, rtxn: &RoTxn<'_>, version: u64) -> Result<()> {
        let result = self.catch_up_inner(state, rtxn, version);
        if result.is_err() {
            // Half-applied: the next refresh reloads everything.
            state.loaded = false;
        }
        result
    }

    fn catch_up_inner(&self, state: &mut State, rtxn: &RoTxn<'_>, version: u64) -> Result<()> {
        let err = lmdb(&self.path, "catching up");
        // Tombstones written after what was applied.
        let from = (state.applied_version + 1).to_be_bytes();
        let mut removed = Vec::new();
        for item in self
            .tombstones
            .range(
                rtxn,
                &(
                    std::ops::Bound::Included(&from[..]),
                    std::ops::Bound::Unbounded,
                ),
            )
            .map_err(&err)?
        {
            let (key, _) = item.map_err(&err)?;
            let seq = u64::from_be_bytes(key[8..16].try_into().map_err(|_| corrupt())?);
            removed.push(seq);
        }
        // On first load, every tombstone may name a key held by the checkpoint.
        if !state.loaded {
            removed.clear();
            for item in self.tombstones.iter(rtxn).map_err(&err)? {
                let (key, _) = item.map_err(&err)?;
                removed.push(u64::from_be_bytes(
                    key[8..16].try_into().map_err(|_| corrupt())?,
                ));
            }
        }
        forget(state, &removed)?;
        // Records written after what was applied (all of them on first load), applied in
        // chunks so a large load never holds every vector twice.
        let start = if state.loaded {
            state.applied_seq + 1
        } else {
            0
        };
        let from = start.to_be_bytes();
        let mut added: Vec<Applied> = Vec::new();
        let mut rows = GraphRows::new(&self.config, 0);
        for item in self
            .records
            .range(
                rtxn,
                &(
                    std::ops::Bound::Included(&from[..]),
                    std::ops::Bound::Unbounded,
                ),
            )
            .map_err(&err)?
        {
            let (key, bytes) = item.map_err(&err)?;
            let seq = u64::from_be_bytes(key.try_into().map_err(|_| corrupt())?);
            let r = StoredRecord::parse(bytes, self.config.dim)?;
            added.push(Applied {
                seq,
                position: r.position,
                metadata: r.metadata_json.map(parse_metadata).transpose()?,
            });
            if !state.graph.contains(seq) {
                rows.push_stored(seq, r.vector);
            }
            if added.len() == APPLY_CHUNK {
                insert(
                    state,
                    std::mem::take(&mut added),
                    &rows.items().collect::<Vec<_>>(),
                )?;
                rows = GraphRows::new(&self.config, 0);
            }
        }
        insert(state, added, &rows.items().collect::<Vec<_>>())?;
        state.applied_version = version;
        state.loaded = true;
        Ok(())
    }

    /// The stored record of `seq`, `None` when it was deleted (by a write committed after
    /// the caller's state).
    fn stored<'t>(&self, rtxn: &'t RoTxn<'_>, seq: u64) -> Result<Option<StoredRecord<'t>>> {
        self.records
            .get(rtxn, &seq.to_be_bytes())
            .map_err(lmdb(&self.path, "reading records"))?
            .map(|bytes| StoredRecord::parse(bytes, self.config.dim))
            .transpose()
    }

    /// A read transaction and the in-memory state at the same committed version.
    fn snapshot(
        &self,
    ) -> Result<(
        RoTxn<'_, heed::WithTls>,
        std::sync::RwLockReadGuard<'_, State>,
    )> {
        loop {
            let rtxn = self.env.read_txn().map_err(lmdb(&self.path, "reading"))?;
            let version = get_u64(&self.meta, &rtxn, VERSION, &self.path)?;
            {
                let state = self.state.read().map_err(|_| Self::lock_err())?;
                if state.loaded && state.applied_version == version {
                    return Ok((rtxn, state));
                }
                if state.loaded && state.applied_version > version {
                    // Another thread applied a newer write: read from a newer transaction.
                    continue;
                }
            }
            let mut state = self.state.write().map_err(|_| Self::lock_err())?;
            if !state.loaded || state.applied_version < version {
                self.catch_up(&mut state, &rtxn, version)?;
            }
        }
    }

    /// The number of live records.
    pub fn count(&self) -> Result<usize> {
        self.refresh()?;
        Ok(self.state.read().map_err(|_| Self::lock_err())?.slots.len())
    }

    /// Writes a batch in one transaction.
    ///
    /// # Errors
    /// `InvalidArgument` for mismatched lengths, duplicate ids, a wrong dimension or a
    /// non-finite value; `AlreadyExists` (add) or `NotFound` (update) naming the ids.
    /// Nothing is written on error.
    pub fn write(&self, mut batch: WriteBatch, mode: WriteMode) -> Result<()> {
        let n = batch.ids.len();
        let dim = self.config.dim;
        if let Some(v) = &batch.vectors {
            if v.len() != n * dim {
                return Err(Error::InvalidArgument(format!(
                    "{} values for {n} ids: expected {n} embeddings of dimension {dim}",
                    v.len()
                )));
            }
            if let Some(pos) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "embedding of id '{}' holds {}: expected finite numbers",
                    batch.ids[pos / dim],
                    v[pos]
                )));
            }
        } else if mode != WriteMode::Update {
            return Err(Error::InvalidArgument(
                "embeddings are required to add records".into(),
            ));
        }
        for (name, len) in [
            ("documents", batch.documents.as_ref().map(Vec::len)),
            ("metadatas", batch.metadatas.as_ref().map(Vec::len)),
        ] {
            if let Some(len) = len {
                if len != n {
                    return Err(Error::InvalidArgument(format!(
                        "{len} {name} for {n} ids: expected one per id"
                    )));
                }
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(n);
        let dups: Vec<&str> = batch
            .ids
            .iter()
            .filter(|id| !seen.insert(id.as_str()))
            .map(String::as_str)
            .collect();
        if !dups.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "duplicate ids in one call: {dups:?}"
            )));
        }
        let parsed: Vec<Option<MetadataPatch>> = match &batch.metadatas {
            Some(ms) => ms
                .iter()
                .map(|m| m.as_deref().map(parse_metadata_patch).transpose())
                .collect::<Result<_>>()?,
            None => vec![None; n],
        };

        let _writer = self.writer.lock().map_err(|_| Self::lock_err())?;
        self.require_present()?;
        let err = lmdb(&self.path, "writing records");
        let mut wtxn = self.env.write_txn().map_err(&err)?;
        // The state catches up to the committed one first, so this batch can then be applied
        // from memory, without reading back the pages just written.
        let committed = get_u64(&self.meta, &wtxn, VERSION, &self.path)?;
        {
            let mut state = self.state.write().map_err(|_| Self::lock_err())?;
            if !state.loaded || state.applied_version != committed {
                self.catch_up(&mut state, &wtxn, committed)?;
            }
        }
        let mut existing: Vec<Option<u64>> = Vec::with_capacity(n);
        for id in &batch.ids {
            existing.push(match self.ids.get(&wtxn, id).map_err(&err)? {
                Some(b) => Some(u64::from_be_bytes(b.try_into().map_err(|_| corrupt())?)),
                None => None,
            });
        }
        match mode {
            WriteMode::Add => {
                let taken: Vec<&str> = batch
                    .ids
                    .iter()
                    .zip(&existing)
                    .filter(|(_, e)| e.is_some())
                    .map(|(i, _)| i.as_str())
                    .collect();
                if !taken.is_empty() {
                    return Err(Error::AlreadyExists(format!(
                        "ids already in the collection: {taken:?}"
                    )));
                }
            }
            WriteMode::Update => {
                let missing: Vec<&str> = batch
                    .ids
                    .iter()
                    .zip(&existing)
                    .filter(|(_, e)| e.is_none())
                    .map(|(i, _)| i.as_str())
                    .collect();
                if !missing.is_empty() {
                    return Err(Error::NotFound(format!(
                        "ids not in the collection: {missing:?}"
                    )));
                }
            }
            WriteMode::Upsert => {}
        }
        let version = committed + 1;
        let mut seq = get_u64(&self.meta, &wtxn, NEXT_SEQ, &self.path)?.max(1);
        let mut applied = Vec::with_capacity(n);
        // Records updated without a new vector keep their stored one.
        let mut kept_vectors = GraphRows::new(&self.config, 0);
        let mut encoded = Vec::new();
        let mut replaced = Vec::new();
        for (i, id) in batch.ids.iter().enumerate() {
            let old = match existing[i] {
                Some(old_seq) => {
                    let r = self.stored(&wtxn, old_seq)?.ok_or_else(corrupt)?;
                    Some(OldRecord {
                        position: r.position,
                        vector: batch.vectors.is_none().then(|| r.vector()),
                        document: r.document.map(str::to_string),
                        metadata_json: r.metadata_json.map(str::to_string),
                    })
                }
                None => None,
            };
            let vector = match &batch.vectors {
                Some(v) => &v[i * dim..(i + 1) * dim],
                None => old
                    .as_ref()
                    .and_then(|o| o.vector.as_deref())
                    .ok_or_else(corrupt)?,
            };
            let document = match &batch.documents {
                Some(d) => d[i].as_deref(),
                None => old.as_ref().and_then(|o| o.document.as_deref()),
            };
            let (metadata, metadata_json) = match (&parsed[i], &old) {
                // An existing record: given keys are merged in, null values delete keys,
                // no metadata keeps the stored one (Chroma's update and upsert).
                (Some(patch), Some(old)) => {
                    let mut merged = old
                        .metadata_json
                        .as_deref()
                        .map(parse_metadata)
                        .transpose()?
                        .unwrap_or_default();
                    for (k, v) in patch {
                        merged.retain(|(mk, _)| mk != k);
                        if let Some(v) = v {
                            merged.push((k.clone(), v.clone()));
                        }
                    }
                    if merged.is_empty() {
                        (None, None)
                    } else {
                        let json = metadata_to_json(&merged);
                        (Some(merged), Some(json))
                    }
                }
                (None, Some(old)) => (
                    old.metadata_json
                        .as_deref()
                        .map(parse_metadata)
                        .transpose()?,
                    old.metadata_json.clone(),
                ),
                (Some(patch), None) => {
                    if let Some((k, _)) = patch.iter().find(|(_, v)| v.is_none()) {
                        return Err(Error::InvalidArgument(format!(
                            "metadata of new id '{id}' sets key '{k}' to null: null only deletes keys of existing records"
                        )));
                    }
                    let values: Vec<(String, MetaValue)> = patch
                        .iter()
                        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                        .collect();
                    let json = metadata_to_json(&values);
                    (Some(values), Some(json))
                }
                (None, None) => (None, None),
            };
            let position = old.as_ref().map_or(seq, |o| o.position);
            encode_record(
                &mut encoded,
                position,
                id,
                vector,
                document,
                metadata_json.as_deref(),
            );
            self.records
                .put(&mut wtxn, &seq.to_be_bytes(), &encoded)
                .map_err(&err)?;
            self.ids
                .put(&mut wtxn, id, &seq.to_be_bytes())
                .map_err(&err)?;
            if let Some(old_seq) = existing[i] {
                self.tomb(&mut wtxn, version, old_seq)?;
                replaced.push(old_seq);
            }
            if batch.vectors.is_none() {
                kept_vectors.push(seq, vector);
            }
            applied.push(Applied {
                seq,
                position,
                metadata,
            });
            seq += 1;
        }
        self.meta
            .put(&mut wtxn, NEXT_SEQ, &seq.to_le_bytes())
            .map_err(&err)?;
        self.meta
            .put(&mut wtxn, VERSION, &version.to_le_bytes())
            .map_err(&err)?;
        wtxn.commit().map_err(&err)?;
        // The given vectors become the graph's in place: no second copy of the batch.
        let vectors: Vec<(u64, &[f32])> = match batch.vectors.as_mut() {
            Some(v) => {
                if self.config.normalizes() {
                    v.chunks_exact_mut(dim).for_each(normalize);
                }
                applied
                    .iter()
                    .map(|a| a.seq)
                    .zip(v.chunks_exact(dim))
                    .collect()
            }
            None => kept_vectors.items().collect(),
        };
        {
            let mut state = self.state.write().map_err(|_| Self::lock_err())?;
            let result =
                forget(&mut state, &replaced).and_then(|()| insert(&mut state, applied, &vectors));
            if result.is_err() {
                state.loaded = false;
            }
            result?;
            state.applied_version = version;
        }
        drop(_writer);
        drop(vectors);
        drop(batch);
        if n >= RELEASE_AFTER {
            release_heap();
        }
        self.maybe_maintain();
        Ok(())
    }

    fn tomb(&self, wtxn: &mut heed::RwTxn<'_>, version: u64, seq: u64) -> Result<()> {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&version.to_be_bytes());
        key[8..].copy_from_slice(&seq.to_be_bytes());
        self.records
            .delete(wtxn, &seq.to_be_bytes())
            .map_err(lmdb(&self.path, "deleting"))?;
        self.tombstones
            .put(wtxn, &key, &[])
            .map_err(lmdb(&self.path, "deleting"))
    }

    /// The live slots matching the filters (all live slots without filters); ids and
    /// documents are read through `rtxn`, at the version `state` has applied.
    fn select(
        &self,
        state: &State,
        rtxn: &RoTxn<'_>,
        ids: Option<&[String]>,
        where_: Option<&Where>,
        where_document: Option<&WhereDocument>,
    ) -> Result<Bitset> {
        let mut set = match ids {
            Some(ids) => {
                let mut s = Bitset::default();
                for id in ids {
                    let seq = self
                        .ids
                        .get(rtxn, id)
                        .map_err(lmdb(&self.path, "reading ids"))?;
                    if let Some(b) = seq {
                        s.insert(u64::from_be_bytes(b.try_into().map_err(|_| corrupt())?));
                    }
                }
                s.and(&state.live);
                s
            }
            None => state.live.clone(),
        };
        if let Some(w) = where_ {
            set.and(&w.evaluate(&state.metadata, &state.live));
        }
        if let Some(wd) = where_document {
            let mut rejected = Vec::new();
            for seq in set.iter() {
                let document = self.stored(rtxn, seq)?.and_then(|r| r.document);
                if !wd.matches(document) {
                    rejected.push(seq);
                }
            }
            for seq in rejected {
                set.remove(seq);
            }
        }
        Ok(set)
    }

    /// `select` without ids, remembered for the state's version.
    fn select_cached(
        &self,
        state: &State,
        rtxn: &RoTxn<'_>,
        filters: FilterTexts<'_>,
    ) -> Result<Arc<Selection>> {
        {
            let mut cache = self.filters.lock().map_err(|_| Self::lock_err())?;
            if cache.version != state.applied_version {
                cache.entries.clear();
                cache.version = state.applied_version;
            }
            if let Some((_, selection)) = cache.entries.iter().find(|(k, _)| filters.is_key(k)) {
                selection.reused.store(true, Ordering::Relaxed);
                return Ok(Arc::clone(selection));
            }
        }
        let where_ = filters.where_.map(Where::parse_json).transpose()?;
        let where_document = filters
            .where_document
            .map(WhereDocument::parse_json)
            .transpose()?;
        let set = self.select(state, rtxn, None, where_.as_ref(), where_document.as_ref())?;
        let set = Arc::new(Selection {
            matches: set.len(),
            set,
            reused: AtomicBool::new(false),
            packed: OnceLock::new(),
            subset: OnceLock::new(),
        });
        let mut cache = self.filters.lock().map_err(|_| Self::lock_err())?;
        if cache.version == state.applied_version {
            if cache.entries.len() == FILTER_CACHE_SIZE {
                cache.entries.remove(0);
            }
            let key = (
                filters.where_.map(str::to_string),
                filters.where_document.map(str::to_string),
            );
            cache.entries.push((key, Arc::clone(&set)));
        }
        Ok(set)
    }

    /// Deletes the records matching all given selectors; returns how many.
    pub fn delete(
        &self,
        ids: Option<&[String]>,
        where_: Option<&Where>,
        where_document: Option<&WhereDocument>,
    ) -> Result<usize> {
        self.refresh()?;
        let _writer = self.writer.lock().map_err(|_| Self::lock_err())?;
        self.require_present()?;
        let err = lmdb(&self.path, "deleting records");
        let mut wtxn = self.env.write_txn().map_err(&err)?;
        // Select under the write lock so the set is the committed state's.
        {
            let mut state = self.state.write().map_err(|_| Self::lock_err())?;
            let version = get_u64(&self.meta, &wtxn, VERSION, &self.path)?;
            self.catch_up(&mut state, &wtxn, version)?;
        }
        let victims: Vec<(u64, String)> = {
            let state = self.state.read().map_err(|_| Self::lock_err())?;
            let mut victims = Vec::new();
            for seq in self
                .select(&state, &wtxn, ids, where_, where_document)?
                .iter()
            {
                let record = self.stored(&wtxn, seq)?.ok_or_else(corrupt)?;
                victims.push((seq, record.id.to_string()));
            }
            victims
        };
        if victims.is_empty() {
            return Ok(0);
        }
        let version = get_u64(&self.meta, &wtxn, VERSION, &self.path)? + 1;
        for (seq, id) in &victims {
            self.ids.delete(&mut wtxn, id).map_err(&err)?;
            self.tomb(&mut wtxn, version, *seq)?;
        }
        self.meta
            .put(&mut wtxn, VERSION, &version.to_le_bytes())
            .map_err(&err)?;
        wtxn.commit().map_err(&err)?;
        drop(_writer);
        self.refresh()?;
        self.maybe_maintain();
        Ok(victims.len())
    }

    /// Records matching the selectors, in insertion order, after `offset`, at most `limit`.
    pub fn get(
        &self,
        ids: Option<&[String]>,
        where_: Option<&Where>,
        where_document: Option<&WhereDocument>,
        limit: Option<usize>,
        offset: usize,
        with_vectors: bool,
    ) -> Result<GetResult> {
        let (rtxn, state) = self.snapshot()?;
        let selected = self.select(&state, &rtxn, ids, where_, where_document)?;
        // Insertion order: each position looked up once, and only the page asked for sorted.
        let mut order: Vec<(u64, u64)> = selected
            .iter()
            .map(|seq| (state.slots.get(&seq).copied().unwrap_or(u64::MAX), seq))
            .collect();
        let end = offset
            .saturating_add(limit.unwrap_or(usize::MAX))
            .min(order.len());
        if end < order.len() {
            if end > 0 {
                order.select_nth_unstable(end - 1);
            }
            order.truncate(end);
        }
        order.sort_unstable();
        let mut out = GetResult::default();
        let mut vectors = Vec::new();
        for (_, seq) in order.into_iter().skip(offset) {
            let Some(r) = self.stored(&rtxn, seq)? else {
                continue;
            };
            out.ids.push(r.id.to_string());
            out.documents.push(r.document.map(str::to_string));
            out.metadatas.push(r.metadata_json.map(str::to_string));
            if with_vectors {
                r.extend_vector(&mut vectors);
            }
        }
        out.vectors = with_vectors.then_some(vectors);
        Ok(out)
    }

    /// The `k` nearest records of each query (row-major `queries`), in parallel.
    ///
    /// Distances are computed from the stored float32 vectors: a quantized graph only
    /// chooses the candidates.
    ///
    /// # Errors
    /// `InvalidArgument` for a wrong dimension, a non-finite value, `k == 0` or a malformed
    /// filter.
    pub fn query(
        &self,
        queries: &[f32],
        k: usize,
        filters: FilterTexts<'_>,
        include: Include,
    ) -> Result<Vec<QueryResult>> {
        let dim = self.config.dim;
        if k == 0 {
            return Err(Error::InvalidArgument(
                "n_results 0: expected at least 1".into(),
            ));
        }
        if !queries.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "query embeddings of {} values: expected rows of dimension {dim}",
                queries.len()
            )));
        }
        if let Some(row) = queries.chunks(dim).position(|q| !all_finite(q)) {
            return Err(Error::InvalidArgument(format!(
                "query embedding {row} holds NaN or infinity: expected finite float32 values"
            )));
        }
        let (rtxn, state) = self.snapshot()?;
        let filtered = filters.where_.is_some() || filters.where_document.is_some();
        let allowed = if filtered {
            Some(self.select_cached(&state, &rtxn, filters)?)
        } else {
            None
        };
        let matches = allowed
            .as_ref()
            .map_or(state.slots.len(), |selection| selection.matches);
        let k = k.min(matches);
        // A repeated filter scored exactly: its rows' float32 vectors and ids, read once.
        let subset = match &allowed {
            Some(selection) if exact_is_cheaper(selection.matches, state.slots.len()) => self
                .packed(&state, selection)
                .and_then(|packed| Some((packed, self.subset(&rtxn, selection, packed)?))),
            _ => None,
        };
        let search = |q: &[f32]| -> Result<Vec<(u64, f32)>> {
            if k == 0 {
                return Ok(Vec::new());
            }
            if let Some((packed, rows)) = subset {
                return self.exact_subset(&state, q, k, packed, rows);
            }
            let unit;
            let q = if self.config.normalizes() {
                unit = self.config.graph_vector(q.to_vec());
                &unit[..]
            } else {
                q
            };
            match &allowed {
                Some(selection) if exact_is_cheaper(selection.matches, state.slots.len()) => {
                    let packed = self.packed(&state, selection);
                    self.exact(&state, q, k, &selection.set, packed)
                }
                Some(selection) => {
                    let set = &selection.set;
                    let found = state
                        .graph
                        .filtered_search(q, k, &|key| set.contains(key))?;
                    if found.len() < k {
                        self.exact(&state, q, k, set, None)
                    } else {
                        Ok(found)
                    }
                }
                // Small collections are scored exactly: cheap, and deterministic.
                None if state.slots.len() <= EXACT_LIMIT => {
                    self.exact(&state, q, k, &state.live, None)
                }
                None => {
                    let mut found = state.graph.search(q, k)?;
                    found.retain(|(key, _)| state.live.contains(*key));
                    if found.len() < k {
                        self.exact(&state, q, k, &state.live, None)
                    } else {
                        Ok(found)
                    }
                }
            }
        };
        let hits: Vec<Vec<(u64, f32)>> = if queries.len() == dim {
            vec![search(queries)?]
        } else {
            queries.par_chunks(dim).map(search).collect::<Result<_>>()?
        };
        if let Some((_, rows)) = subset {
            if !include.documents && !include.metadatas && !include.vectors {
                return Ok(hits.iter().map(|found| answer(found, rows)).collect());
            }
        }
        let rescore = self.rescores() && subset.is_none();
        let threads = rayon::current_num_threads();
        if threads == 1 || hits.len() < 2 * threads {
            return self.assemble(&rtxn, &state, &hits, queries, k, include, rescore);
        }
        // A batch is assembled on every core, each part in a read transaction of its own
        // thread (LMDB's are bound to one); a part whose transaction sees a newer write than
        // the snapshot is assembled afterwards in the snapshot's.
        let version = state.applied_version;
        let per = hits.len().div_ceil(4 * threads);
        let assembled: Vec<Option<Vec<QueryResult>>> = hits
            .par_chunks(per)
            .zip(queries.par_chunks(per * dim))
            .map(|(part, q)| {
                let own = self.env.read_txn().ok().filter(|txn| {
                    get_u64(&self.meta, txn, VERSION, &self.path).ok() == Some(version)
                });
                own.map(|txn| self.assemble(&txn, &state, part, q, k, include, rescore))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        let mut results = Vec::with_capacity(hits.len());
        for ((done, part), q) in assembled
            .into_iter()
            .zip(hits.chunks(per))
            .zip(queries.chunks(per * dim))
        {
            match done {
                Some(done) => results.extend(done),
                None => {
                    results.extend(self.assemble(&rtxn, &state, part, q, k, include, rescore)?);
                }
            }
        }
        Ok(results)
    }

    /// The query results of `hits` (one list per row of `queries`), their records read from
    /// `rtxn`, which is at the state's version: each hit's record once, in key order
    /// (neighbouring pages). With `rescore`, distances are computed again from the records'
    /// float32 vectors and the hits ordered by them.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        rtxn: &RoTxn<'_>,
        state: &State,
        hits: &[Vec<(u64, f32)>],
        queries: &[f32],
        k: usize,
        include: Include,
        rescore: bool,
    ) -> Result<Vec<QueryResult>> {
        let dim = self.config.dim;
        let mut seqs: Vec<u64> = Vec::with_capacity(hits.iter().map(Vec::len).sum());
        seqs.extend(
            hits.iter()
                .flatten()
                .map(|h| h.0)
                .filter(|seq| state.slots.contains_key(seq)),
        );
        seqs.sort_unstable();
        seqs.dedup();
        let mut records = Vec::with_capacity(seqs.len());
        for &seq in &seqs {
            let stored = self.stored(rtxn, seq)?;
            if rescore {
                // Its vector is read back below: its lines load while the next is looked up.
                if let Some(r) = &stored {
                    crate::prefetch::prefetch_lines(
                        r.vector.as_ptr().cast(),
                        r.vector.len().div_ceil(64),
                    );
                }
            }
            records.push(stored);
        }
        let record = |seq: u64| -> Option<&StoredRecord<'_>> {
            let i = seqs.binary_search(&seq).ok()?;
            records[i].as_ref()
        };
        let mut buf = Vec::with_capacity(if rescore { dim } else { 0 });
        let assemble = |(found, q): (&Vec<(u64, f32)>, &[f32])| -> QueryResult {
            let mut rows = Vec::with_capacity(found.len());
            for &(seq, distance) in found {
                let Some(record) = record(seq) else {
                    continue; // deleted, or written after the snapshot
                };
                let distance = if rescore {
                    buf.clear();
                    record.extend_vector(&mut buf);
                    self.space.distance(q, &buf)
                } else {
                    distance
                };
                rows.push((distance, seq, record));
            }
            if rescore {
                rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            }
            rows.truncate(k);
            let mut r = QueryResult::default();
            let mut vectors = Vec::new();
            for (distance, _, record) in rows {
                r.ids.push(record.id.to_string());
                r.distances.push(distance);
                if include.documents {
                    r.documents.push(record.document.map(str::to_string));
                }
                if include.metadatas {
                    r.metadatas.push(record.metadata_json.map(str::to_string));
                }
                if include.vectors {
                    record.extend_vector(&mut vectors);
                }
            }
            r.vectors = include.vectors.then_some(vectors);
            r
        };
        Ok(hits.iter().zip(queries.chunks(dim)).map(assemble).collect())
    }

    /// Exact top-k among `set`, scoring the graph's stored vectors. A float16 graph hands
    /// them over as they are stored (a cast from bfloat16 or int8 costs more than the
    /// distance).
    ///
    /// A quantized graph ranks by approximate distances, so more candidates come back for
    /// the float32 rescoring of the query: every one that may be among the true `k` nearest.
    ///
    /// A `packed` selection is first ranked by its int8 estimates, and only the nearest
    /// estimates (see [`PACKED_CANDIDATES_PER_HIT`]) are scored from the graph's vectors.
    fn exact(
        &self,
        state: &State,
        q: &[f32],
        k: usize,
        set: &Bitset,
        packed: Option<&Packed>,
    ) -> Result<Vec<(u64, f32)>> {
        let rounding = self.graph_distance_error();
        let wanted = if rounding == Some(0.0) { k } else { 2 * k };
        let threads = rayon::current_num_threads();
        let split = threads > 1 && set.len() >= PARALLEL_EXACT_ROWS;
        let mut hits = match (packed, state.graph.own()) {
            (Some(packed), Some(graph)) => {
                // The int8 estimates choose candidates; the graph's vectors rescore them.
                Self::packed_candidates(graph, || q, packed, wanted)?
                    .into_iter()
                    .map(|row| {
                        let (seq, distance) = graph.packed_distance(q, packed, row);
                        Hit(distance, seq)
                    })
                    .collect()
            }
            _ if split => top_hits_in_parts(set.word_count(), threads, |words| {
                self.exact_top(state, q, wanted, set.iter_words(words))
            })?,
            _ => self.exact_top(state, q, wanted, set.iter())?,
        };
        if hits.len() > wanted {
            // The nearest `wanted` first (linear), so only they are sorted.
            hits.select_nth_unstable(wanted);
            hits.truncate(wanted);
        }
        hits.sort_unstable();
        let kth = k.checked_sub(1).and_then(|i| hits.get(i)).map(|h| h.0);
        if let (Some(error), Some(kth)) = (rounding, kth) {
            // Two distances each off by at most `error` can swap only within `2 * error`.
            hits.retain(|h| h.0 <= kth + 2.0 * error);
        }
        Ok(hits.into_iter().map(|h| (h.1, h.0)).collect())
    }

    /// The rows of `packed` to score for the `wanted` nearest to `q` (graph space): all of
    /// them when few, else the nearest by int8 estimate (see [`PACKED_CANDIDATES_PER_HIT`]),
    /// estimated on every core for a large block.
    fn packed_candidates<'q>(
        graph: &hnsw::Hnsw,
        q: impl FnOnce() -> &'q [f32],
        packed: &Packed,
        wanted: usize,
    ) -> Result<Vec<usize>> {
        let candidates = (PACKED_CANDIDATES_PER_HIT * wanted).max(MIN_PACKED_CANDIDATES);
        if packed.len() <= candidates {
            return Ok((0..packed.len()).collect());
        }
        let threads = rayon::current_num_threads();
        let codes = graph.query_codes(q());
        let estimate = |rows: std::ops::Range<usize>| {
            let mut estimates = Vec::with_capacity(rows.len());
            graph.packed_estimates(&codes, packed, rows.clone(), &mut estimates);
            Ok(nearest_rows(&estimates, rows.start, candidates))
        };
        let mut near = if threads > 1 && packed.len() >= PARALLEL_PACKED_ROWS {
            top_hits_in_parts(packed.len(), threads, estimate)?
        } else {
            estimate(0..packed.len())?
        };
        keep_nearest(&mut near, candidates);
        Ok(near.into_iter().map(|hit| hit.1 as usize).collect())
    }

    /// Exact top-`k` of a packed selection from its subset rows: candidates by int8 estimate
    /// (as many as [`Collection::exact`] rescores for a float16 graph), distances from the
    /// float32 vectors of the records, as [`Collection::assemble`] computes them for hits
    /// of the graph. `q` is the query as given.
    fn exact_subset(
        &self,
        state: &State,
        q: &[f32],
        k: usize,
        packed: &Packed,
        rows: &SubsetRows,
    ) -> Result<Vec<(u64, f32)>> {
        let graph = state
            .graph
            .own()
            .ok_or_else(|| Error::Storage("a packed selection without its graph".into()))?;
        // The query as the graph holds it: for the int8 estimates, and the graph's distances.
        let unit = std::cell::OnceCell::new();
        let graph_q = || -> &[f32] {
            if self.config.normalizes() {
                unit.get_or_init(|| self.config.graph_vector(q.to_vec()))
            } else {
                q
            }
        };
        let (q_scored, q_sq_norm) = if self.rescores() {
            (q, hnsw::dot_f32(q, q))
        } else {
            (graph_q(), 0.0)
        };
        let q = q_scored;
        let mut hits: Vec<Hit> = Self::packed_candidates(graph, graph_q, packed, 2 * k)?
            .into_iter()
            .map(|row| Hit(rows.distance(self.space, q, q_sq_norm, row), rows.seq(row)))
            .collect();
        keep_nearest(&mut hits, k);
        hits.sort_unstable();
        Ok(hits.into_iter().map(|h| (h.1, h.0)).collect())
    }

    /// Whether query hits' distances are computed again from the records' float32 vectors
    /// (a quantized graph's are rounded).
    fn rescores(&self) -> bool {
        self.config.quantization != "f32"
    }

    /// How far a distance computed from the graph's vectors can be from the float32 one:
    /// `Some(0.0)` for a float32 graph; for a float16 graph of unit vectors, 2^-11 (each
    /// component is within 2^-11 of its value relative to it, so by Cauchy-Schwarz the dot
    /// product of unit vectors is too) plus float32 summation; `None` when unknown
    /// (bfloat16 and int8 graphs: twice `k` candidates are rescored).
    fn graph_distance_error(&self) -> Option<f32> {
        match self.config.quantization.as_str() {
            "f32" => Some(0.0),
            "f16" if self.config.graph == graph::OWN_GRAPH && self.config.normalizes() => {
                Some(2f32.powi(-11) + self.config.dim as f32 * f32::EPSILON)
            }
            _ => None,
        }
    }

    /// The `k` nearest of `seqs` (in increasing order) to `q`, unordered.
    fn exact_top(
        &self,
        state: &State,
        q: &[f32],
        k: usize,
        seqs: impl Iterator<Item = u64>,
    ) -> Result<Vec<Hit>> {
        top_hits(k, |f| {
            state.graph.score_each(&self.config, self.space, q, seqs, f)
        })
    }

    /// The selection's graph vectors in one block, packed when the cached filter is scored
    /// exactly again, while the cached filters' blocks stay within
    /// [`PACKED_FILTER_BYTES`]; `None` otherwise, and for a usearch graph.
    fn packed<'s>(&self, state: &State, selection: &'s Selection) -> Option<&'s Packed> {
        if !selection.reused.load(Ordering::Relaxed) {
            return None;
        }
        selection
            .packed
            .get_or_init(|| {
                let graph = state.graph.own()?;
                let bytes = selection.matches * graph.packed_row_bytes();
                (self.filter_cache_bytes()? + bytes <= PACKED_FILTER_BYTES)
                    .then(|| graph.pack(selection.set.iter()))
            })
            .as_ref()
    }

    /// Bytes of packed codes and subset rows the cached filters hold.
    fn filter_cache_bytes(&self) -> Option<usize> {
        let cache = self.filters.lock().ok()?;
        Some(cache.entries.iter().map(|(_, s)| s.bytes()).sum())
    }

    /// The packed rows' float32 vectors and ids, read from `rtxn` (at the state's version)
    /// on the first query that scores the packed selection, while the cached filters stay
    /// within [`PACKED_FILTER_BYTES`]; `None` otherwise.
    fn subset<'s>(
        &self,
        rtxn: &RoTxn<'_>,
        selection: &'s Selection,
        packed: &Packed,
    ) -> Option<&'s SubsetRows> {
        selection
            .subset
            .get_or_init(|| {
                let dim = self.config.dim;
                let bytes = packed.len() * (dim * 4 + 40);
                if self.filter_cache_bytes()? + bytes > PACKED_FILTER_BYTES {
                    return None;
                }
                let rule = if self.rescores() {
                    DistanceRule::Record
                } else {
                    DistanceRule::Graph
                };
                let mut rows = SubsetRows::with_capacity(dim, rule, packed.len());
                let mut vector = Vec::with_capacity(dim);
                for &seq in packed.keys() {
                    let record = self.stored(rtxn, seq).ok()??;
                    vector.clear();
                    record.extend_vector(&mut vector);
                    if rule == DistanceRule::Graph && self.config.normalizes() {
                        normalize(&mut vector);
                    }
                    rows.push(seq, record.id, vector.iter().copied());
                }
                Some(rows)
            })
            .as_ref()
    }

    /// Sets the graph search expansion (recall/speed trade-off) for this process.
    pub fn set_search_ef(&self, ef: usize) -> Result<()> {
        if !(1..=100_000).contains(&ef) {
            return Err(Error::InvalidArgument(format!(
                "ef_search={ef}: expected 1 to 100000"
            )));
        }
        self.state
            .read()
            .map_err(|_| Self::lock_err())?
            .graph
            .set_ef(ef);
        Ok(())
    }

    /// Saves the graph as a checkpoint named after the last sequence it holds.
    pub fn checkpoint(&self) -> Result<()> {
        self.refresh()?;
        let mut state = self.state.write().map_err(|_| Self::lock_err())?;
        self.save_checkpoint(&mut state)
    }

    /// Checkpoints the graph when the records it holds beyond its last checkpoint would take
    /// longer to insert again on the next open than the graph takes to save (see
    /// [`REPLAY_COST_PER_SAVE`]). Returns whether it saved. Meant for a process that is done
    /// with the collection: the write path checkpoints far less often, to keep adds fast.
    pub fn checkpoint_if_behind(&self) -> Result<bool> {
        self.refresh()?;
        let mut state = self.state.write().map_err(|_| Self::lock_err())?;
        let behind = state.applied_seq - state.checkpoint_seq;
        if behind == 0 || behind * REPLAY_COST_PER_SAVE < state.slots.len() as u64 {
            return Ok(false);
        }
        self.save_checkpoint(&mut state)?;
        Ok(true)
    }

    fn save_checkpoint(&self, state: &mut State) -> Result<()> {
        if state.applied_seq == state.checkpoint_seq {
            return Ok(());
        }
        let suffix = Graph::suffix(&self.config);
        let file = self
            .path
            .join(format!("graph-{}{suffix}", state.applied_seq));
        // Processes sharing the folder may save the same sequence at once: each writes a file
        // of its own, and the rename makes one of them whole.
        let tmp = self.path.join(format!(
            "graph-{}{suffix}.{}.tmp",
            state.applied_seq,
            std::process::id()
        ));
        if let Err(e) = state.graph.save(&tmp) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &file)
            .map_err(|e| Error::Storage(format!("cannot save graph: {e}")))?;
        state.checkpoint_seq = state.applied_seq;
        // Only older checkpoints go (another process may have saved a newer one), with the
        // temporary files of older saves that a killed process left behind.
        for (seq, old) in self.graph_files() {
            if seq < state.checkpoint_seq {
                let _ = std::fs::remove_file(old);
            }
        }
        for entry in std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("graph-")) else {
                continue;
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let seq: Option<u64> = rest[..digits].parse().ok();
            if rest.ends_with(".tmp") && seq.is_some_and(|seq| seq < state.checkpoint_seq) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Rebuilds the graph and the metadata postings from the live records, then
    /// checkpoints.
    pub fn compact(&self) -> Result<()> {
        self.refresh()?;
        {
            let mut state = self.state.write().map_err(|_| Self::lock_err())?;
            let rtxn = self
                .env
                .read_txn()
                .map_err(lmdb(&self.path, "compacting"))?;
            let mut graph = Graph::new(&self.config, self.space)?;
            let mut metadata = MetadataIndex::default();
            let mut seqs: Vec<u64> = state.slots.keys().copied().collect();
            seqs.sort_unstable();
            for chunk in seqs.chunks(APPLY_CHUNK) {
                let mut rows = GraphRows::new(&self.config, chunk.len());
                for &seq in chunk {
                    // Deleted by a write after the refresh: the next refresh forgets it.
                    let Some(r) = self.stored(&rtxn, seq)? else {
                        continue;
                    };
                    if let Some(json) = r.metadata_json {
                        metadata.insert(seq, &parse_metadata(json)?);
                    }
                    rows.push_stored(seq, r.vector);
                }
                graph.add(&rows.items().collect::<Vec<_>>())?;
            }
            state.graph = graph;
            state.metadata = metadata;
            state.removed_in_graph = 0;
            state.checkpoint_seq = 0;
        }
        self.checkpoint()
    }

    /// Compacts when deletions pass a quarter of the graph; checkpoints when the graph is far
    /// ahead of its last checkpoint. It runs after a write has committed, so its failures (a
    /// full disk, another process's file in the way) are not the write's and are dropped: the
    /// graph is a cache of the records, caught up or rebuilt on the next open.
    fn maybe_maintain(&self) {
        let Ok((removed, size, behind)) = self.state.read().map(|s| {
            (
                s.removed_in_graph,
                s.slots.len(),
                s.applied_seq - s.checkpoint_seq,
            )
        }) else {
            return;
        };
        if removed > 1000 && removed * 4 > size {
            let _ = self.compact();
        } else if behind as usize > 50_000.max(size) {
            let _ = self.checkpoint();
        }
    }
}

/// Widens IEEE half floats (as raw bits) into `out`, with F16C where the CPU has it.
fn f16_to_f32(half: &[i16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: the CPU supports F16C (checked above); slices have equal lengths.
            unsafe { f16_to_f32_f16c(half, out) };
            return;
        }
    }
    for (o, h) in out.iter_mut().zip(half) {
        *o = f16_bits_to_f32(*h as u16);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c,avx")]
unsafe fn f16_to_f32_f16c(half: &[i16], out: &mut [f32]) {
    use std::arch::x86_64::{__m128i, _mm256_cvtph_ps, _mm256_storeu_ps, _mm_loadu_si128};
    let chunks = half.len() / 8;
    for i in 0..chunks {
        let v = _mm_loadu_si128(half.as_ptr().add(i * 8).cast::<__m128i>());
        _mm256_storeu_ps(out.as_mut_ptr().add(i * 8), _mm256_cvtph_ps(v));
    }
    for i in chunks * 8..half.len() {
        out[i] = f16_bits_to_f32(half[i] as u16);
    }
}

/// One IEEE half float (raw bits) as f32.
fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise the mantissa.
            let shift = m.leading_zeros() - 21;
            sign | ((127 - 15 + 1 - shift) << 23) | (((m << shift) & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// A scored candidate, ordered by distance then sequence (a max-heap keeps the worst on top).
#[derive(Debug, PartialEq)]
struct Hit(f32, u64);
impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Hit {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// The `k` nearest of the `(seq, distance)` pairs `each` passes to its callback, unordered.
/// Seqs come in increasing order: an equal distance never displaces an earlier seq, which
/// ranks first on ties.
fn top_hits(
    k: usize,
    each: impl FnOnce(&mut dyn FnMut(u64, f32)) -> Result<()>,
) -> Result<Vec<Hit>> {
    let mut heap = BinaryHeap::with_capacity(k + 1);
    each(&mut |seq, d| {
        if heap.len() < k {
            heap.push(Hit(d, seq));
        } else if heap.peek().is_some_and(|h| d < h.0) {
            heap.pop();
            heap.push(Hit(d, seq));
        }
    })?;
    Ok(heap.into_vec())
}

/// The `n` nearest of `distances` (of rows `first..`) as hits of their rows. Most rows are
/// ruled out against a bound found in a sample of every 8th distance, a little past the
/// sample's share of `n`; the rest are selected among what remains.
fn nearest_rows(distances: &[f32], first: usize, n: usize) -> Vec<Hit> {
    const STEP: usize = 8;
    let hits = |bound: f32| -> Vec<Hit> {
        // About 1.5 n pass the sample's bound: room for that without growing.
        let mut hits = Vec::with_capacity(2 * n);
        hits.extend(
            distances
                .iter()
                .enumerate()
                .filter(|(_, d)| **d <= bound)
                .map(|(i, &d)| Hit(d, (first + i) as u64)),
        );
        hits
    };
    let mut sample: Vec<f32> = distances.iter().step_by(STEP).copied().collect();
    let rank = n * 3 / 2 / STEP;
    let mut near = if rank < sample.len() {
        hits(*sample.select_nth_unstable_by(rank, f32::total_cmp).1)
    } else {
        Vec::new()
    };
    if near.len() < n {
        near = hits(f32::INFINITY);
    }
    keep_nearest(&mut near, n);
    near
}

/// Keeps the `n` nearest of `hits` (a selection, not a sort: a heap would take in most rows
/// when `n` is a large share of them).
/// Whether every value is finite: a fold without early exit, so it runs in SIMD lanes.
fn all_finite(values: &[f32]) -> bool {
    values.iter().fold(true, |ok, x| ok & x.is_finite())
}

/// The ids and distances of `found` (sequences and distances), from the subset rows.
fn answer(found: &[(u64, f32)], rows: &SubsetRows) -> QueryResult {
    let mut result = QueryResult::default();
    for &(seq, distance) in found {
        if let Some(row) = rows.row_of(seq) {
            result.ids.push(rows.id(row).to_string());
            result.distances.push(distance);
        }
    }
    result
}

fn keep_nearest(hits: &mut Vec<Hit>, n: usize) {
    if n == 0 {
        hits.clear();
    } else if hits.len() > n {
        hits.select_nth_unstable(n - 1);
        hits.truncate(n);
    }
}

/// The hits `score` finds in each part of `0..len`, scored on every core: a few parts per
/// thread even out ranges denser in matches than others.
fn top_hits_in_parts(
    len: usize,
    threads: usize,
    score: impl Fn(std::ops::Range<usize>) -> Result<Vec<Hit>> + Sync,
) -> Result<Vec<Hit>> {
    let step = len.div_ceil(threads * 4).max(1);
    let parts: Vec<Vec<Hit>> = (0..len)
        .step_by(step)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| score(start..(start + step).min(len)))
        .collect::<Result<_>>()?;
    Ok(parts.into_iter().flatten().collect())
}

/// Returns freed heap memory to the system. A large write frees the batch as received, its
/// parsed metadata and LMDB's multi-page buffers, which glibc would otherwise keep mapped
/// (LMDB keeps its single dirty pages for the next transaction).
fn release_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory that is already free.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops removed sequences from the state and the graph.
fn forget(state: &mut State, removed: &[u64]) -> Result<()> {
    for &seq in removed {
        if state.slots.remove(&seq).is_some() {
            state.live.remove(seq);
        }
        if state.graph.remove(seq)? {
            state.removed_in_graph += 1;
        }
    }
    Ok(())
}

/// Adds committed records to the state and their vectors to the graph.
fn insert(state: &mut State, added: Vec<Applied>, vectors: &[(u64, &[f32])]) -> Result<()> {
    for a in added {
        if let Some(m) = &a.metadata {
            state.metadata.insert(a.seq, m);
        }
        state.live.insert(a.seq);
        state.slots.insert(a.seq, a.position);
        state.applied_seq = state.applied_seq.max(a.seq);
    }
    let mut new = Vec::with_capacity(vectors.len());
    new.extend(
        vectors
            .iter()
            .filter(|(seq, _)| !state.graph.contains(*seq)),
    );
    state.graph.add(&new)
}

#[cfg(test)]
mod tests;

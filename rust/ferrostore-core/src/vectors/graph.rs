//! The graph a collection searches: ferrostore's own HNSW ([`super::hnsw`]) for float32 and
//! (cosine) float16 graphs, usearch for bfloat16 and int8 ones and for collections created
//! before the own graph existed (their configuration names no graph).
//!
//! Either way the graph is derived data: checkpointed to `graph-<seq>.<suffix>` and rebuilt
//! from the records when its file is missing or damaged.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use usearch::{Index, IndexOptions, MetricKind};

use super::hnsw::{Hnsw, HnswParams, Storage};
use super::{f16_to_f32, lanes, quantization, usearch_err, CollectionConfig, Space};
use crate::{Error, Result};

/// `CollectionConfig::graph` of the own HNSW.
pub const OWN_GRAPH: &str = "ferrostore";
/// `CollectionConfig::graph` of usearch (and of configurations stored before the field).
pub const USEARCH_GRAPH: &str = "usearch";

/// Reusable buffers of exact scoring.
#[derive(Default)]
pub(super) struct Scratch {
    wide: Vec<f32>,
    half: Vec<i16>,
}

pub(super) enum Graph {
    Usearch(Index),
    Own { graph: Box<Hnsw>, ef: AtomicUsize },
}

/// The space the graph measures in: unit vectors under inner product for a normalized
/// cosine collection.
fn graph_space(config: &CollectionConfig, space: Space) -> Space {
    if config.normalizes() {
        Space::Ip
    } else {
        space
    }
}

impl Graph {
    /// An empty graph for `config`.
    pub(super) fn new(config: &CollectionConfig, space: Space) -> Result<Graph> {
        if config.graph != OWN_GRAPH {
            return new_usearch(config, space).map(Graph::Usearch);
        }
        let storage = match config.quantization.as_str() {
            "f32" => Storage::F32,
            "f16" if config.normalizes() => Storage::F16,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "quantization '{other}' with space '{}': ferrostore's graph stores f32, \
                     or f16 for cosine",
                    config.space
                )))
            }
        };
        let params = HnswParams {
            m: config.m,
            ef_construction: config.ef_construction,
            storage,
            ..HnswParams::default()
        };
        Ok(Graph::Own {
            graph: Box::new(Hnsw::new(config.dim, graph_space(config, space), params)?),
            ef: AtomicUsize::new(config.ef_search),
        })
    }

    /// The checkpoint file suffix of `config`'s graph.
    pub(super) fn suffix(config: &CollectionConfig) -> &'static str {
        if config.graph == OWN_GRAPH {
            ".hnsw"
        } else {
            ".usearch"
        }
    }

    /// Reads a checkpoint into this (empty) graph.
    ///
    /// # Errors
    /// `Storage` when the file is unreadable or holds another graph than `config`'s.
    pub(super) fn load(&mut self, config: &CollectionConfig, path: &Path) -> Result<()> {
        let damaged = |what: &str| Error::Storage(format!("{}: {what}", path.display()));
        match self {
            Graph::Usearch(index) => {
                let file = path.to_str().ok_or_else(|| damaged("path is not UTF-8"))?;
                index.load(file).map_err(usearch_err)?;
                index.change_expansion_search(config.ef_search);
                index.change_expansion_add(config.ef_construction);
            }
            Graph::Own { graph, .. } => {
                let loaded = Hnsw::load(path)?;
                if loaded.dim() != graph.dim() {
                    return Err(damaged("a graph of another dimension"));
                }
                **graph = loaded;
            }
        }
        Ok(())
    }

    /// Writes the graph to `path` (callers rename it into place), ferrostore's own after
    /// linking back the nodes its last additions cut off ([`Hnsw::connect_if_added`]).
    pub(super) fn save(&mut self, path: &Path) -> Result<()> {
        match self {
            Graph::Usearch(index) => {
                let file = path
                    .to_str()
                    .ok_or_else(|| Error::Storage("collection path is not UTF-8".into()))?;
                index.save(file).map_err(usearch_err)
            }
            Graph::Own { graph, .. } => {
                // A checkpoint holds a connected graph: otherwise the nodes added since the
                // last pass would wait, after the next open, for the graph to grow again.
                graph.connect_if_added();
                graph.save(path)
            }
        }
    }

    /// ferrostore's own graph, `None` for usearch's.
    pub(super) fn own(&self) -> Option<&Hnsw> {
        match self {
            Graph::Own { graph, .. } => Some(graph),
            Graph::Usearch(_) => None,
        }
    }

    pub(super) fn contains(&self, seq: u64) -> bool {
        match self {
            Graph::Usearch(index) => index.contains(seq),
            Graph::Own { graph, .. } => graph.contains(seq),
        }
    }

    /// Removes `seq`; returns whether it was there.
    pub(super) fn remove(&mut self, seq: u64) -> Result<bool> {
        match self {
            Graph::Usearch(index) => {
                if !index.contains(seq) {
                    return Ok(false);
                }
                index.remove(seq).map_err(usearch_err)?;
                Ok(true)
            }
            Graph::Own { graph, .. } => Ok(graph.remove(seq)),
        }
    }

    /// Adds `(seq, vector)` pairs (vectors as the graph holds them), in parallel.
    pub(super) fn add(&mut self, vectors: &[(u64, &[f32])]) -> Result<()> {
        if vectors.is_empty() {
            return Ok(());
        }
        match self {
            Graph::Usearch(index) => {
                let needed = index.size() + vectors.len();
                if needed > index.capacity() {
                    // Geometric growth by half: amortised like doubling, with less idle
                    // capacity.
                    let capacity = needed.max(index.capacity() + index.capacity() / 2);
                    index
                        .reserve_capacity_and_threads(capacity, rayon::current_num_threads() + 16)
                        .map_err(usearch_err)?;
                }
                let index = &*index;
                vectors
                    .par_iter()
                    .try_for_each(|(seq, v)| index.add(*seq, v).map_err(usearch_err))
            }
            Graph::Own { graph, .. } => graph.add(vectors),
        }
    }

    /// The search expansion of this process.
    #[cfg(test)]
    pub(super) fn ef(&self) -> usize {
        match self {
            Graph::Usearch(index) => index.expansion_search(),
            Graph::Own { ef, .. } => ef.load(Ordering::Relaxed),
        }
    }

    /// Sets the search expansion for this process.
    pub(super) fn set_ef(&self, ef: usize) {
        match self {
            Graph::Usearch(index) => index.change_expansion_search(ef),
            Graph::Own { ef: current, .. } => current.store(ef, Ordering::Relaxed),
        }
    }

    /// The `k` nearest of `q` (as the graph holds vectors) by graph search.
    pub(super) fn search(&self, q: &[f32], k: usize) -> Result<Vec<(u64, f32)>> {
        match self {
            Graph::Usearch(index) => {
                let m = index.search(q, k).map_err(usearch_err)?;
                Ok(m.keys.into_iter().zip(m.distances).collect())
            }
            Graph::Own { graph, ef } => graph.search(q, k, ef.load(Ordering::Relaxed), None),
        }
    }

    /// As [`Graph::search`], returning only sequences `admit` accepts.
    pub(super) fn filtered_search(
        &self,
        q: &[f32],
        k: usize,
        admit: &(dyn Fn(u64) -> bool + Sync),
    ) -> Result<Vec<(u64, f32)>> {
        match self {
            Graph::Usearch(index) => {
                let m = index.filtered_search(q, k, admit).map_err(usearch_err)?;
                Ok(m.keys.into_iter().zip(m.distances).collect())
            }
            Graph::Own { graph, ef } => graph.search(q, k, ef.load(Ordering::Relaxed), Some(admit)),
        }
    }

    /// Calls `f(seq, distance)` for each of `seqs` the graph holds, in order (see
    /// [`Graph::score`]).
    pub(super) fn score_each(
        &self,
        config: &CollectionConfig,
        space: Space,
        q: &[f32],
        seqs: impl Iterator<Item = u64>,
        mut f: impl FnMut(u64, f32),
    ) -> Result<()> {
        if let Graph::Own { graph, .. } = self {
            graph.for_each_distance(q, seqs, f);
            return Ok(());
        }
        let mut scratch = Scratch::default();
        for seq in seqs {
            if let Some(d) = self.score(config, space, q, seq, &mut scratch)? {
                f(seq, d);
            }
        }
        Ok(())
    }

    /// The distance of `q` (as the graph holds vectors) to `seq`'s graph vector, `None`
    /// when the graph does not hold it.
    pub(super) fn score(
        &self,
        config: &CollectionConfig,
        space: Space,
        q: &[f32],
        seq: u64,
        scratch: &mut Scratch,
    ) -> Result<Option<f32>> {
        let index = match self {
            Graph::Own { graph, .. } => return Ok(graph.distance_to(q, seq)),
            Graph::Usearch(index) => index,
        };
        let dim = config.dim;
        scratch.wide.resize(dim, 0.0);
        // A float16 graph hands its vectors over as stored (a cast from bfloat16 or int8
        // costs more than the distance).
        let got = if config.quantization == "f16" {
            scratch.half.resize(dim, 0);
            let n = index
                .get(seq, usearch::f16::from_mut_i16s(&mut scratch.half))
                .map_err(usearch_err)?;
            f16_to_f32(&scratch.half, &mut scratch.wide);
            n
        } else {
            index.get(seq, &mut scratch.wide).map_err(usearch_err)?
        };
        if got == 0 {
            return Ok(None);
        }
        Ok(Some(if config.normalizes() {
            1.0 - lanes(q, &scratch.wide, |x, y| x * y)
        } else {
            space.distance(q, &scratch.wide)
        }))
    }
}

fn new_usearch(config: &CollectionConfig, space: Space) -> Result<Index> {
    let options = IndexOptions {
        dimensions: config.dim,
        metric: if config.normalizes() {
            MetricKind::IP
        } else {
            space.metric()
        },
        quantization: quantization(&config.quantization)?,
        connectivity: config.m,
        expansion_add: config.ef_construction,
        expansion_search: config.ef_search,
        multi: false,
    };
    let index = Index::new(&options).map_err(usearch_err)?;
    // Thread contexts for rayon's workers plus callers' threads.
    index
        .reserve_capacity_and_threads(1024, rayon::current_num_threads() + 16)
        .map_err(usearch_err)?;
    Ok(index)
}

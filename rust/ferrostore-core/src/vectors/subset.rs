//! A repeated filter's matching records as float32 rows with their ids, read from LMDB once.
//!
//! A query through a cached filter that is scored exactly then needs neither the graph's
//! rounded vectors nor a record lookup per hit: its ids are here, and its distances are the
//! ones the same query reports without the subset (same kernels on the same values): from
//! the records' float32 vectors where graph hits are rescored (a quantized graph), else as
//! the float32 graph computes them (unit vectors for cosine).

use super::{hnsw, Space};

/// How a subset computes distances: as hits are rescored from records, or as a float32
/// graph computes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DistanceRule {
    /// [`Space::distance`] of the query as given to the record's vector.
    Record,
    /// The graph's: squared L2, else `1 - dot`, of the query and row as the graph holds them.
    Graph,
}

/// The rows of one selection, in the order of the packed int8 codes they align with.
pub(super) struct SubsetRows {
    dim: usize,
    rule: DistanceRule,
    seqs: Vec<u64>,
    vectors: Vec<f32>,
    /// Per row, `row · row` (the cosine denominator's half).
    sq_norms: Vec<f32>,
    /// Per row, where its id ends in `ids`.
    id_ends: Vec<usize>,
    ids: String,
}

impl SubsetRows {
    pub(super) fn with_capacity(dim: usize, rule: DistanceRule, rows: usize) -> Self {
        SubsetRows {
            dim,
            rule,
            seqs: Vec::with_capacity(rows),
            vectors: Vec::with_capacity(rows * dim),
            sq_norms: Vec::with_capacity(rows),
            id_ends: Vec::with_capacity(rows),
            ids: String::new(),
        }
    }

    /// Appends a record's row: its sequence (above every row's so far), id and vector (the
    /// record's for [`DistanceRule::Record`], the graph's for [`DistanceRule::Graph`]).
    pub(super) fn push(&mut self, seq: u64, id: &str, vector: impl Iterator<Item = f32>) {
        debug_assert!(self.seqs.last().is_none_or(|&last| last < seq));
        let start = self.vectors.len();
        self.vectors.extend(vector);
        let row = &self.vectors[start..];
        self.sq_norms.push(hnsw::dot_f32(row, row));
        self.seqs.push(seq);
        self.ids.push_str(id);
        self.id_ends.push(self.ids.len());
    }

    /// Heap bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.vectors.len() * 4 + self.seqs.len() * 20 + self.ids.len()
    }

    pub(super) fn seq(&self, row: usize) -> u64 {
        self.seqs[row]
    }

    pub(super) fn id(&self, row: usize) -> &str {
        let start = if row == 0 { 0 } else { self.id_ends[row - 1] };
        &self.ids[start..self.id_ends[row]]
    }

    /// The row holding `seq`, if any (rows are in ascending sequence order).
    pub(super) fn row_of(&self, seq: u64) -> Option<usize> {
        self.seqs.binary_search(&seq).ok()
    }

    /// The distance of `q` to `row` under the subset's rule: `q` is the query as given
    /// ([`DistanceRule::Record`], with `q_sq_norm` its `q · q`) or as the graph holds it.
    pub(super) fn distance(&self, space: Space, q: &[f32], q_sq_norm: f32, row: usize) -> f32 {
        let b = &self.vectors[row * self.dim..(row + 1) * self.dim];
        match (self.rule, space) {
            (_, Space::L2) => hnsw::l2_f32(q, b),
            (DistanceRule::Graph, _) | (_, Space::Ip) => 1.0 - hnsw::dot_f32(q, b),
            (DistanceRule::Record, Space::Cosine) => {
                let denom = (q_sq_norm * self.sq_norms[row]).sqrt();
                if denom == 0.0 {
                    1.0
                } else {
                    1.0 - hnsw::dot_f32(q, b) / denom
                }
            }
        }
    }
}

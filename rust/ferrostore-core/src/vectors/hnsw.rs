//! An HNSW graph of our own (Malkov & Yashunin, 2018), the fallback DESIGN.md names for
//! when usearch cannot reach the vector targets.
//!
//! Why not usearch: its dense index never prefetches (it passes a no-op prefetcher to the
//! graph search), and its vectors can only be read one key at a time through a locked
//! lookup, which makes exact scoring of a filtered subset cost a call per row. Here:
//!
//! - vectors are float32, contiguous by slot (`slot * dim`), so exact scoring of any subset
//!   is a loop over slices, and the graph search prefetches each neighbour's vector before
//!   measuring it;
//! - level-0 links are one flat array of `AtomicU32` (`slot * (2m + 1)`: count, then ids),
//!   upper levels a small array per node above level 0; writers lock the node they change
//!   (4,096 striped locks, one held at a time), readers never lock: every id they can read names an allocated slot, so a racing read sees an old or
//!   a new neighbour list, never freed memory;
//! - a batch is added in two phases: its vectors and slots are stored first (`&mut self`),
//!   then its nodes are linked in parallel (`&self`, rayon);
//! - removal is a tombstone: the node keeps routing searches, and is never returned.
//!
//! Distances are Chroma's: squared l2, `1 - dot` for ip, and for cosine `1 - dot` of
//! vectors normalized when added (queries are normalized by the search).

use std::cell::RefCell;
use std::collections::{BinaryHeap, HashMap};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use rayon::prelude::*;

use super::{lanes, normalize, Space};
use crate::fxhash::FxMap;
use crate::prefetch::prefetch_lines;
use crate::{Error, Result};

/// The highest level a node can get (a level is drawn as `-ln(u) / ln(m)`).
const MAX_LEVEL: usize = 16;
/// The links of a node on a level it is not on.
static NO_LINKS: AtomicU32 = AtomicU32::new(0);
/// Writers lock `locks[slot % LOCK_STRIPES]`, one lock at a time (so never in a cycle).
const LOCK_STRIPES: usize = 4096;
const FILE_MAGIC: &[u8; 8] = b"FSHNSW01";
/// [`Hnsw::add`] reconnects the graph once the nodes added since the last time reach
/// `1 / CONNECT_EVERY` of it. A pass that links nothing walks each list once: 3.5 ms on
/// 50k MiniLM vectors, which take 4.4 s to link, so it costs under 1% of the adds.
const CONNECT_EVERY: usize = 8;
/// [`Hnsw::connect`] prefers a taker among this many nodes nearest the one it links.
const NEAREST_TAKERS: usize = 8;

/// How a graph stores its vectors (queries are always float32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    F32,
    /// IEEE half floats: half the memory; for unit vectors (cosine) the 11-bit precision
    /// changes distances by about 1e-3. Values past float16's range are refused.
    F16,
}

/// The largest finite float16.
const F16_MAX: f32 = 65504.0;

/// Build parameters of a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on the upper levels; level 0 keeps twice as many.
    pub m: usize,
    /// Candidates kept while linking a new node (larger: better graph, slower build).
    pub ef_construction: usize,
    /// Seeds the draw of node levels (a graph is reproducible for a given insertion order
    /// when built on one thread).
    pub seed: u64,
    pub storage: Storage,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 128,
            seed: 0x5eed,
            storage: Storage::F32,
        }
    }
}

/// Bytes per row of int8 codes: the dimension rounded up to whole 64-byte blocks (zero
/// padded), the width of the int8 kernels' loads.
fn code_width(dim: usize) -> usize {
    dim.div_ceil(64) * 64
}

/// Rounds `x` to int8 codes `out` (the length of `x`; the rest of `out` is left as it is)
/// and returns the scale that maps them back: `x[i] ≈ scale * out[i]`, the largest
/// magnitude at 127. An `x` without a usable scale (all zero, or too small) has scale 0.
fn quantize(x: &[f32], out: &mut [i8]) -> f32 {
    // Sixteen running maxima, not one: the compiler keeps them in one register.
    let mut maxima = [0.0f32; 16];
    let blocks = x.chunks_exact(16);
    for (m, v) in maxima.iter_mut().zip(blocks.remainder()) {
        *m = v.abs();
    }
    for block in blocks {
        for (m, v) in maxima.iter_mut().zip(block) {
            *m = m.max(v.abs());
        }
    }
    let largest = maxima.iter().fold(0.0f32, |m, v| m.max(*v));
    let inverse = 127.0 / largest;
    // No usable scale (all zeros, values so small that 127 / largest overflows, infinity)
    // or a NaN (a fold without early exit: it compiles to vector compares): codes of zero.
    if !largest.is_finite()
        || !inverse.is_finite()
        || x.iter().fold(false, |nan, v| nan | v.is_nan())
    {
        out[..x.len()].fill(0);
        return 0.0;
    }
    for (o, v) in out.iter_mut().zip(x) {
        // Half away from zero, then a truncating cast: `f32::round` is a library call on the
        // baseline target.
        let scaled = v * inverse;
        // SAFETY: `v` and `inverse` are finite and |v| <= largest, so the sum is finite and
        // within ±127.5 (a saturating cast would clamp each value one at a time).
        *o = unsafe { (scaled + 0.5f32.copysign(scaled)).to_int_unchecked::<i32>() } as i8;
    }
    largest / 127.0
}

/// Some keys' graph vectors as int8 codes in one block, in order: a set scored again and
/// again (a cached filter's matches) is read as one stream, a quarter (float32) or half
/// (float16) of the graph's bytes per row, with one VNNI instruction per 64 values. Codes
/// only estimate distances: callers rescore the nearest estimates from the graph itself.
#[derive(Debug, Default)]
pub struct Packed {
    keys: Vec<u64>,
    slots: Vec<u32>,
    /// `code_width(dim)` codes per row.
    codes: Vec<i8>,
    /// Per row, the scale that turns its code sums back into a dot product.
    scales: Vec<f32>,
    /// Per row, the sum of its codes: the kernels multiply the query's codes offset by 128
    /// (unsigned), which this takes back out.
    code_sums: Vec<i32>,
    /// Per row, the squared norm of its vector (l2).
    sq_norms: Vec<f32>,
}

/// A query quantized for [`Hnsw::packed_estimates`].
pub struct QueryCodes {
    /// Codes plus 128, zero padded to the rows' width.
    codes: Vec<u8>,
    scale: f32,
    sq_norm: f32,
}

impl Packed {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.keys.len() * 20 + self.codes.len()
    }

    /// The keys of the rows, in row order.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }
}

/// A search candidate: distance and slot, ordered by distance then slot.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near(f32, u32);
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Near {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// The same candidate ordered nearest-first in a max-heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Far(std::cmp::Reverse<Near>);

/// Per-thread marks of visited slots: a slot is visited when its mark equals the current
/// generation, so clearing costs one increment.
struct Visited {
    marks: Vec<u16>,
    generation: u16,
}

impl Visited {
    fn start(&mut self, slots: usize) {
        if self.marks.len() < slots {
            self.marks.resize(slots, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `slot`; returns whether it was marked already.
    #[inline]
    fn visit(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        let seen = *mark == self.generation;
        *mark = self.generation;
        seen
    }
}

/// Vectors up to this size are prefetched whole. A 384-d float16 vector (12 lines) is
/// read before the hardware prefetcher has followed its first lines: loading it whole
/// measured 0-18% more queries/s and an 8% faster build on MiniLM 50k (`hnsw_speed`,
/// alternating rounds); a 384-d float32 one (24 lines) measured 5-7% slower.
const WHOLE_PREFETCH_BYTES: usize = 768;

/// How many neighbours' vectors load ahead of the one being scored. Prefetching every
/// neighbour at once (up to 32 × 12 lines) filled the CPU's line fill buffers, and the
/// prefetches stalled: two ahead measured 12-17% more single queries/s on MiniLM 50k than
/// all at once, and 10% more batched (alternating processes, against FAISS in each).
const PREFETCH_AHEAD: usize = 2;

thread_local! {
    static VISITED: RefCell<Visited> = const {
        RefCell::new(Visited { marks: Vec::new(), generation: 0 })
    };
}

/// An HNSW graph over float32 vectors, keyed by `u64`.
pub struct Hnsw {
    dim: usize,
    space: Space,
    /// The distance kernel, chosen once for the CPU (AVX2 + FMA when it has them).
    kernels: Kernels,
    params: HnswParams,
    /// `slot * dim ..`: the vector of each slot (unit length for cosine).
    vectors: Vec<f32>,
    /// The vectors of a float16 graph (`vectors` is empty then).
    halves: Vec<u16>,
    keys: Vec<u64>,
    levels: Vec<u8>,
    /// `slot * (2m + 1) ..`: the level-0 link count, then the links.
    links0: Vec<AtomicU32>,
    /// Nodes above level 0 (about one in `m`): levels 1..=level, `(level - 1) * (m + 1) ..`
    /// count then links.
    upper: HashMap<u32, Box<[AtomicU32]>>,
    /// Held while a node's links change (striped: a lock per node would cost 8 bytes each).
    locks: Box<[Mutex<()>]>,
    /// The entry point and its level (`None` while the graph is empty).
    entry: RwLock<Option<(u32, usize)>>,
    slot_of: FxMap<u64, u32>,
    /// Whether `keys` rise strictly with the slot (a collection's sequences do): then a
    /// rising run of keys finds its slots by a forward search of `keys`, in cache order.
    keys_ascending: bool,
    removed: Vec<u64>,
    removed_count: usize,
    /// Nodes added since [`Hnsw::connect`] last ran.
    added_since_connect: usize,
}

impl std::fmt::Debug for Hnsw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hnsw")
            .field("dim", &self.dim)
            .field("space", &self.space)
            .field("params", &self.params)
            .field("len", &self.len())
            .finish()
    }
}

impl Hnsw {
    /// An empty graph.
    ///
    /// # Errors
    /// `InvalidArgument` for a zero dimension, `m < 2` or `ef_construction == 0`.
    pub fn new(dim: usize, space: Space, params: HnswParams) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidArgument(
                "dimension 0: expected at least 1".into(),
            ));
        }
        if params.m < 2 || params.m > 255 {
            return Err(Error::InvalidArgument(format!(
                "m = {}: expected 2 to 255 links per node",
                params.m
            )));
        }
        if params.ef_construction == 0 {
            return Err(Error::InvalidArgument(
                "ef_construction = 0: expected at least 1".into(),
            ));
        }
        Ok(Hnsw {
            dim,
            space,
            kernels: Kernels::for_cpu(),
            params,
            vectors: Vec::new(),
            halves: Vec::new(),
            keys: Vec::new(),
            levels: Vec::new(),
            links0: Vec::new(),
            upper: HashMap::new(),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            entry: RwLock::new(None),
            slot_of: FxMap::default(),
            keys_ascending: true,
            removed: Vec::new(),
            removed_count: 0,
            added_since_connect: 0,
        })
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Nodes that can be returned (added and not removed).
    pub fn len(&self) -> usize {
        self.keys.len() - self.removed_count
    }

    /// Whether no node can be returned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` is in the graph and not removed.
    pub fn contains(&self, key: u64) -> bool {
        self.slot_of.contains_key(&key)
    }

    /// Bytes held by vectors, links and bookkeeping (not the key map's overhead).
    pub fn memory_bytes(&self) -> usize {
        let upper: usize = self.upper.values().map(|u| u.len() * 4 + 16).sum();
        self.vectors.len() * 4
            + self.halves.len() * 2
            + self.keys.len() * 9
            + self.links0.len() * 4
            + upper
            + LOCK_STRIPES * std::mem::size_of::<Mutex<()>>()
            + self.slot_of.capacity() * 16
            + self.removed.len() * 8
    }

    fn m0(&self) -> usize {
        2 * self.params.m
    }

    #[inline]
    fn storage(&self) -> Storage {
        self.params.storage
    }

    /// The distance of the float32 vector `q` to `slot`'s stored vector.
    #[inline]
    fn dist(&self, q: &[f32], slot: u32) -> f32 {
        self.row_dist(q, &self.vectors, &self.halves, slot as usize)
    }

    /// The distance of `q` to row `row` of `vectors` (a float32 graph's layout) or `halves`
    /// (a float16 graph's).
    #[inline]
    fn row_dist(&self, q: &[f32], vectors: &[f32], halves: &[u16], row: usize) -> f32 {
        let start = row * self.dim;
        let range = start..start + self.dim;
        let k = &self.kernels;
        match (self.storage(), self.space) {
            (Storage::F32, Space::L2) => (k.l2)(q, &vectors[range]),
            (Storage::F32, _) => 1.0 - (k.dot)(q, &vectors[range]),
            (Storage::F16, Space::L2) => (k.l2_half)(q, &halves[range]),
            (Storage::F16, _) => 1.0 - (k.dot_half)(q, &halves[range]),
        }
    }

    /// `slot`'s stored vector as float32, into `out`.
    fn decode(&self, slot: u32, out: &mut Vec<f32>) {
        let start = slot as usize * self.dim;
        out.clear();
        match self.storage() {
            Storage::F32 => out.extend_from_slice(&self.vectors[start..start + self.dim]),
            Storage::F16 => {
                out.resize(self.dim, 0.0);
                (self.kernels.widen)(&self.halves[start..start + self.dim], out);
            }
        }
    }

    /// The links of `slot` at `level`: its count cell and its link cells.
    #[inline]
    fn links(&self, slot: u32, level: usize) -> (&AtomicU32, &[AtomicU32]) {
        let cells = if level == 0 {
            let width = self.m0() + 1;
            let start = slot as usize * width;
            &self.links0[start..start + width]
        } else {
            let width = self.params.m + 1;
            let start = (level - 1) * width;
            match self.upper.get(&slot) {
                Some(cells) if cells.len() >= start + width => &cells[start..start + width],
                // Not on this level (only a damaged file links there): no links.
                _ => return (&NO_LINKS, &[]),
            }
        };
        (&cells[0], &cells[1..])
    }

    fn neighbours(&self, slot: u32, level: usize, out: &mut Vec<u32>) {
        let (count, cells) = self.links(slot, level);
        let n = (count.load(Ordering::Acquire) as usize).min(cells.len());
        out.clear();
        out.extend(cells[..n].iter().map(|c| c.load(Ordering::Relaxed)));
    }

    fn set_links(&self, slot: u32, level: usize, ids: &[u32]) {
        let (count, cells) = self.links(slot, level);
        // Shrink first, so a reader never pairs the new count with unwritten cells.
        let n = ids.len().min(cells.len());
        count.store(0, Ordering::Release);
        for (cell, id) in cells.iter().zip(ids) {
            cell.store(*id, Ordering::Relaxed);
        }
        count.store(n as u32, Ordering::Release);
    }

    fn draw_level(&self, slot: usize) -> usize {
        // splitmix64 of (seed, slot): levels do not depend on thread scheduling.
        let mut z = self
            .params
            .seed
            .wrapping_add((slot as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let level = (-unit.ln() / (self.params.m as f64).ln()).floor() as usize;
        level.min(MAX_LEVEL)
    }

    fn check_vector(&self, v: &[f32], what: &str) -> Result<()> {
        if v.len() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "{what} has {} dimensions: expected {}",
                v.len(),
                self.dim
            )));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "{what} has a non-finite value {} at position {i}: expected finite numbers",
                v[i]
            )));
        }
        if self.storage() == Storage::F16 && self.space != Space::Cosine {
            if let Some(i) = v.iter().position(|x| x.abs() > F16_MAX) {
                return Err(Error::InvalidArgument(format!(
                    "{what} has {} at position {i}: a float16 graph holds values up to \
                     {F16_MAX} (store float32)",
                    v[i]
                )));
            }
        }
        Ok(())
    }

    /// Adds `(key, vector)` pairs: stored first, then linked into the graph in parallel.
    ///
    /// A key already in the graph is replaced (its old node becomes a tombstone).
    ///
    /// # Errors
    /// `InvalidArgument` for a vector of the wrong length or with a non-finite value, or a
    /// key given twice; nothing is added then.
    pub fn add(&mut self, items: &[(u64, &[f32])]) -> Result<()> {
        let mut seen = HashMap::with_capacity(items.len());
        for (i, (key, v)) in items.iter().enumerate() {
            self.check_vector(v, &format!("vector of key {key}"))?;
            if let Some(first) = seen.insert(*key, i) {
                return Err(Error::InvalidArgument(format!(
                    "key {key} is given twice (items {first} and {i}): expected distinct keys"
                )));
            }
        }
        if self.keys.len() + items.len() > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "{} more nodes would pass the limit of {} per graph",
                items.len(),
                u32::MAX
            )));
        }
        for (key, _) in items {
            self.remove(*key);
        }
        let first = self.keys.len();
        let total = first + items.len();
        // Huge pages for the two arrays every search walks at random: a 4 KiB page per
        // vector read costs a TLB miss on large graphs.
        match self.storage() {
            Storage::F32 => grow_on_huge_pages(&mut self.vectors, items.len() * self.dim, |x| *x),
            Storage::F16 => grow_on_huge_pages(&mut self.halves, items.len() * self.dim, |x| *x),
        }
        let mut unit = Vec::with_capacity(self.dim);
        let link_cells = items.len() * (self.m0() + 1);
        grow_on_huge_pages(&mut self.links0, link_cells, |cell| {
            AtomicU32::new(cell.load(Ordering::Relaxed))
        });
        self.links0
            .resize_with(total * (self.m0() + 1), || AtomicU32::new(0));
        let upper_width = self.params.m + 1;
        for (i, (key, v)) in items.iter().enumerate() {
            let slot = first + i;
            unit.clear();
            unit.extend_from_slice(v);
            if self.space == Space::Cosine {
                normalize(&mut unit);
            }
            match self.storage() {
                Storage::F32 => self.vectors.extend_from_slice(&unit),
                Storage::F16 => {
                    let start = self.halves.len();
                    self.halves.resize(start + self.dim, 0);
                    (self.kernels.narrow)(&unit, &mut self.halves[start..]);
                }
            }
            let level = self.draw_level(slot);
            self.keys_ascending &= self.keys.last().is_none_or(|last| last < key);
            self.keys.push(*key);
            self.levels.push(level as u8);
            if level > 0 {
                self.upper.insert(
                    slot as u32,
                    (0..level * upper_width)
                        .map(|_| AtomicU32::new(0))
                        .collect(),
                );
            }
            self.slot_of.insert(*key, slot as u32);
        }
        self.removed.resize(total.div_ceil(64), 0);
        let graph = &*self;
        (first..total)
            .into_par_iter()
            .for_each(|slot| graph.link(slot as u32));
        self.added_since_connect += items.len();
        if self.added_since_connect * CONNECT_EVERY >= self.keys.len() {
            self.connect();
        }
        Ok(())
    }

    /// Links back every live node that level 0 cannot reach from the entry point, and
    /// returns how many it linked. Pruning a full list can drop a node from every list
    /// that held it (6 to 10 of 20,000 roughly normal 16-d vectors in the tests' builds,
    /// before this pass); a search then never returns it, not even for its own vector.
    ///
    /// Such a node gets a link from the nearest reachable node with room, among the
    /// [`NEAREST_TAKERS`] nearest (a search for the node expands them first). When all of
    /// them are full, the nearest one's farthest link `n -> far` becomes `n -> node ->
    /// far`: `node` takes `far` into its own list, in place of its own farthest link if it
    /// has to. No node reachable before is cut off (no path from the entry ran through
    /// `node`, so none used its links), so one pass reaches every live node.
    pub fn connect(&mut self) -> usize {
        self.added_since_connect = 0;
        let Some((entry, top)) = *self.entry.read().unwrap_or_else(|e| e.into_inner()) else {
            return 0;
        };
        let m0 = self.m0();
        let mut reached = vec![false; self.keys.len()];
        let mut pending = Vec::new();
        let mut links = Vec::with_capacity(m0);
        let mut reach_from = |reached: &mut Vec<bool>, from: u32| {
            reached[from as usize] = true;
            pending.push(from);
            while let Some(slot) = pending.pop() {
                self.neighbours(slot, 0, &mut links);
                for &n in &links {
                    if !std::mem::replace(&mut reached[n as usize], true) {
                        pending.push(n);
                    }
                }
            }
        };
        reach_from(&mut reached, entry);
        let mut linked = 0;
        let mut q = Vec::with_capacity(self.dim);
        let mut ids = Vec::with_capacity(m0 + 1);
        for slot in 0..self.keys.len() as u32 {
            if reached[slot as usize] || self.is_removed(slot) {
                continue;
            }
            self.decode(slot, &mut q);
            let mut current = entry;
            let mut current_dist = self.dist(&q, entry);
            for l in (1..=top).rev() {
                (current, current_dist) = self.greedy(&q, current, current_dist, l, &mut ids);
            }
            // Upper levels may lead to `slot` itself, or to nodes level 0 cannot reach: the
            // entry point starts the search too, and only reached nodes are results (the
            // entry is one, so there is always one).
            let admit = |n: u32| reached[n as usize] && n != slot;
            let found: Vec<u32> = self
                .search_layer(
                    &q,
                    &[
                        Near(current_dist, current),
                        Near(self.dist(&q, entry), entry),
                    ],
                    self.params.ef_construction,
                    0,
                    Some(&admit),
                )
                .into_iter()
                .map(|n| n.1)
                .collect();
            let Some(&nearest) = found.first() else {
                continue;
            };
            let with_room = found
                .iter()
                .take(NEAREST_TAKERS)
                .find(|&&n| (self.links(n, 0).0.load(Ordering::Relaxed) as usize) < m0);
            self.neighbours(with_room.copied().unwrap_or(nearest), 0, &mut ids);
            match with_room {
                Some(&node) => {
                    ids.push(slot);
                    self.set_links(node, 0, &ids);
                }
                None => {
                    let far = self.farthest_link(nearest, &ids);
                    let far_node = std::mem::replace(&mut ids[far], slot);
                    self.set_links(nearest, 0, &ids);
                    self.neighbours(slot, 0, &mut ids);
                    if !ids.contains(&far_node) {
                        if ids.len() == m0 {
                            let own = self.farthest_link(slot, &ids);
                            ids[own] = far_node;
                        } else {
                            ids.push(far_node);
                        }
                        self.set_links(slot, 0, &ids);
                    }
                }
            }
            linked += 1;
            reach_from(&mut reached, slot);
        }
        linked
    }

    /// [`Hnsw::connect`] when nodes were added since it last ran; returns how many it linked.
    pub fn connect_if_added(&mut self) -> usize {
        if self.added_since_connect == 0 {
            return 0;
        }
        self.connect()
    }

    /// The index in `ids`, `node`'s level-0 links (not empty), of the farthest from it.
    fn farthest_link(&self, node: u32, ids: &[u32]) -> usize {
        let mut base = Vec::with_capacity(self.dim);
        self.decode(node, &mut base);
        (0..ids.len())
            .max_by(|&a, &b| {
                self.dist(&base, ids[a])
                    .total_cmp(&self.dist(&base, ids[b]))
            })
            .unwrap_or(0)
    }

    /// Links a stored node into the graph (the node's vector and level are set).
    fn link(&self, slot: u32) {
        let level = usize::from(self.levels[slot as usize]);
        let entry = {
            let mut entry = self.entry.write().unwrap_or_else(|e| e.into_inner());
            match *entry {
                None => {
                    *entry = Some((slot, level));
                    return;
                }
                Some(e) => e,
            }
        };
        let mut q = Vec::with_capacity(self.dim);
        self.decode(slot, &mut q);
        let q = &q[..];
        let (mut current, top) = entry;
        let mut current_dist = self.dist(q, current);
        let mut scratch = Vec::new();
        for l in (level + 1..=top).rev() {
            (current, current_dist) = self.greedy(q, current, current_dist, l, &mut scratch);
        }
        let mut entries = vec![Near(current_dist, current)];
        for l in (0..=level.min(top)).rev() {
            let found = self.search_layer(q, &entries, self.params.ef_construction, l, None);
            let max_links = if l == 0 { self.m0() } else { self.params.m };
            // As FAISS: a new node fills its whole level-0 list (2m) at once. hnswlib's m
            // there, left to grow by later nodes' links back, measured recall@10 0.951
            // against 0.955 at ef 24 on 50k MiniLM vectors, in the same build time.
            let chosen = self.select(&found, max_links, Some(slot));
            {
                let _lock = self.locks[slot as usize % LOCK_STRIPES]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let ids: Vec<u32> = chosen.iter().map(|n| n.1).collect();
                self.set_links(slot, l, &ids);
            }
            for n in &chosen {
                self.link_back(n.1, slot, n.0, l, max_links);
            }
            entries = found;
        }
        if level > top {
            let mut entry = self.entry.write().unwrap_or_else(|e| e.into_inner());
            if entry.is_none_or(|(_, top)| level > top) {
                *entry = Some((slot, level));
            }
        }
    }

    /// Adds `new` to `node`'s links at `level`, pruning with the heuristic when full.
    fn link_back(&self, node: u32, new: u32, dist: f32, level: usize, max_links: usize) {
        let _lock = self.locks[node as usize % LOCK_STRIPES]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut ids = Vec::with_capacity(max_links + 1);
        self.neighbours(node, level, &mut ids);
        if ids.contains(&new) {
            return;
        }
        if ids.len() < max_links {
            ids.push(new);
            self.set_links(node, level, &ids);
            return;
        }
        let mut base = Vec::with_capacity(self.dim);
        self.decode(node, &mut base);
        let mut candidates: Vec<Near> = ids
            .iter()
            .map(|&id| Near(self.dist(&base, id), id))
            .collect();
        candidates.push(Near(dist, new));
        candidates.sort_unstable();
        let kept = self.select(&candidates, max_links, None);
        let ids: Vec<u32> = kept.iter().map(|n| n.1).collect();
        self.set_links(node, level, &ids);
    }

    /// The neighbour-selection heuristic: nearest first, keeping a candidate only when it
    /// is nearer to the base than to every one kept (spreads links across directions).
    /// `found` is sorted nearest first; `skip` is the base itself.
    fn select(&self, found: &[Near], max_links: usize, skip: Option<u32>) -> Vec<Near> {
        let mut kept: Vec<Near> = Vec::with_capacity(max_links);
        let mut cv = Vec::with_capacity(self.dim);
        for c in found {
            if Some(c.1) == skip {
                continue;
            }
            if kept.len() == max_links {
                break;
            }
            self.decode(c.1, &mut cv);
            if kept.iter().all(|k| self.dist(&cv, k.1) > c.0) {
                kept.push(*c);
            }
        }
        kept
    }

    /// Moves to the nearest neighbour until none is nearer, on one level.
    fn greedy(
        &self,
        q: &[f32],
        mut current: u32,
        mut current_dist: f32,
        level: usize,
        scratch: &mut Vec<u32>,
    ) -> (u32, f32) {
        loop {
            let mut moved = false;
            self.neighbours(current, level, scratch);
            for &n in scratch.iter() {
                let d = self.dist(q, n);
                if d < current_dist {
                    current = n;
                    current_dist = d;
                    moved = true;
                }
            }
            if !moved {
                return (current, current_dist);
            }
        }
    }

    /// Asks the CPU to load `slot`'s vector: all of it up to [`WHOLE_PREFETCH_BYTES`], else
    /// its first two cache lines (the hardware prefetcher follows the rest of a sequential
    /// read).
    #[inline]
    fn prefetch(&self, slot: u32) {
        let start = slot as usize * self.dim;
        let (p, bytes): (*const i8, usize) = match self.storage() {
            Storage::F32 => (self.vectors[start..].as_ptr().cast(), self.dim * 4),
            Storage::F16 => (self.halves[start..].as_ptr().cast(), self.dim * 2),
        };
        let lines = if bytes <= WHOLE_PREFETCH_BYTES {
            bytes.div_ceil(64)
        } else {
            2
        };
        prefetch_lines(p, lines);
    }

    /// Asks the CPU to load `slot`'s level-0 link list (read when it is expanded).
    #[inline]
    fn prefetch_links(&self, slot: u32) {
        let width = self.m0() + 1;
        prefetch_lines(self.links0[slot as usize * width..].as_ptr().cast(), 1);
    }

    /// Beam search on one level from `entries`; returns up to `ef` nodes sorted nearest
    /// first. With `admit`, only admitted nodes are returned (all still route the search).
    fn search_layer(
        &self,
        q: &[f32],
        entries: &[Near],
        ef: usize,
        level: usize,
        admit: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<Near> {
        VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.start(self.keys.len());
            let mut candidates: BinaryHeap<Far> = BinaryHeap::with_capacity(ef * 2);
            let mut results: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
            for e in entries {
                if visited.visit(e.1) {
                    continue;
                }
                candidates.push(Far(std::cmp::Reverse(*e)));
                if admit.is_none_or(|f| f(e.1)) {
                    results.push(*e);
                }
            }
            while results.len() > ef {
                results.pop();
            }
            let mut ids = Vec::with_capacity(self.m0());
            while let Some(Far(std::cmp::Reverse(nearest))) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|w| nearest.0 > w.0) {
                    break;
                }
                self.neighbours(nearest.1, level, &mut ids);
                ids.retain(|&n| !visited.visit(n));
                for &n in ids.iter().take(PREFETCH_AHEAD) {
                    self.prefetch(n);
                }
                for (i, &n) in ids.iter().enumerate() {
                    if let Some(&next) = ids.get(i + PREFETCH_AHEAD) {
                        self.prefetch(next);
                    }
                    let d = self.dist(q, n);
                    let worst = results.peek().map_or(f32::INFINITY, |w| w.0);
                    if results.len() < ef || d < worst {
                        self.prefetch_links(n);
                        candidates.push(Far(std::cmp::Reverse(Near(d, n))));
                        if admit.is_none_or(|f| f(n)) {
                            results.push(Near(d, n));
                            if results.len() > ef {
                                results.pop();
                            }
                        }
                    }
                }
            }
            results.into_sorted_vec()
        })
    }

    fn query_vector<'q>(&self, q: &'q [f32], unit: &'q mut Vec<f32>) -> Result<&'q [f32]> {
        self.check_vector(q, "query")?;
        if self.space == Space::Cosine {
            unit.clear();
            unit.extend_from_slice(q);
            normalize(unit);
            Ok(unit)
        } else {
            Ok(q)
        }
    }

    /// The `k` nearest live nodes to `q` as `(key, distance)`, nearest first, searching
    /// with a beam of `max(ef, k)`. With `admit`, only keys it admits are returned.
    ///
    /// # Errors
    /// `InvalidArgument` for a query of the wrong length or with a non-finite value.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        admit: Option<&(dyn Fn(u64) -> bool + Sync)>,
    ) -> Result<Vec<(u64, f32)>> {
        let mut unit = Vec::new();
        let q = self.query_vector(q, &mut unit)?;
        let Some((entry, top)) = *self.entry.read().unwrap_or_else(|e| e.into_inner()) else {
            return Ok(Vec::new());
        };
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut current = entry;
        let mut current_dist = self.dist(q, entry);
        let mut scratch = Vec::new();
        for l in (1..=top).rev() {
            (current, current_dist) = self.greedy(q, current, current_dist, l, &mut scratch);
        }
        let live = |slot: u32| -> bool {
            !self.is_removed(slot) && admit.is_none_or(|f| f(self.keys[slot as usize]))
        };
        let found = self.search_layer(q, &[Near(current_dist, current)], ef.max(k), 0, Some(&live));
        Ok(found
            .into_iter()
            .take(k)
            .map(|n| (self.keys[n.1 as usize], n.0))
            .collect())
    }

    /// The exact `k` nearest of the live nodes among `keys` (unknown keys are skipped),
    /// nearest first, ties to the smaller key.
    ///
    /// # Errors
    /// As [`Hnsw::search`].
    pub fn exact(&self, q: &[f32], k: usize, keys: &[u64]) -> Result<Vec<(u64, f32)>> {
        let mut unit = Vec::new();
        let q = self.query_vector(q, &mut unit)?;
        let mut heap: BinaryHeap<(Near, u64)> = BinaryHeap::with_capacity(k + 1);
        for key in keys {
            let Some(&slot) = self.slot_of.get(key) else {
                continue;
            };
            let d = self.dist(q, slot);
            let item = (Near(d, 0), *key);
            if heap.len() < k {
                heap.push(item);
            } else if heap.peek().is_some_and(|worst| item < *worst) {
                heap.pop();
                heap.push(item);
            }
        }
        Ok(heap
            .into_sorted_vec()
            .into_iter()
            .map(|(n, key)| (key, n.0))
            .collect())
    }

    /// Calls `f(key, distance)` for each of `keys` the graph holds (in order), `q` given as
    /// the graph holds vectors. Vectors are requested a few keys ahead: scattered rows then
    /// load together instead of one cache miss at a time.
    pub fn for_each_distance(
        &self,
        q: &[f32],
        keys: impl Iterator<Item = u64>,
        mut f: impl FnMut(u64, f32),
    ) {
        const AHEAD: usize = 8;
        let mut ring = [(0u64, 0u32); AHEAD];
        let mut queued = 0usize;
        let row_lines = match self.storage() {
            Storage::F32 => self.dim * 4,
            Storage::F16 => self.dim * 2,
        }
        .div_ceil(64);
        for (key, slot) in self.slots_of(keys) {
            let start = slot as usize * self.dim;
            let row: *const i8 = match self.storage() {
                Storage::F32 => self.vectors[start..].as_ptr().cast(),
                Storage::F16 => self.halves[start..].as_ptr().cast(),
            };
            prefetch_lines(row, row_lines);
            let at = queued % AHEAD;
            if queued >= AHEAD {
                let (k, s) = ring[at];
                f(k, self.dist(q, s));
            }
            ring[at] = (key, slot);
            queued += 1;
        }
        for i in queued.saturating_sub(AHEAD)..queued {
            let (k, s) = ring[i % AHEAD];
            f(k, self.dist(q, s));
        }
    }

    /// Bytes of one row of a [`Packed`] block of this graph.
    pub fn packed_row_bytes(&self) -> usize {
        20 + code_width(self.dim)
    }

    /// The slots of those of `keys` the graph holds (live), in order. Hash lookups of
    /// scattered keys miss the cache for most keys; ascending keys of a graph whose keys
    /// ascend are found by a forward search instead, reading `keys` in order.
    fn slots_of<'a, K: Iterator<Item = u64> + 'a>(
        &'a self,
        keys: K,
    ) -> impl Iterator<Item = (u64, u32)> + 'a {
        let (mut cursor, mut last) = (0, 0);
        keys.filter_map(move |key| {
            if !self.keys_ascending {
                return self.slot_of.get(&key).map(|&slot| (key, slot));
            }
            if key < last {
                cursor = 0;
            }
            last = key;
            cursor = seek(&self.keys, cursor, key);
            match self.keys.get(cursor) {
                Some(&k) if k == key && !self.is_removed(cursor as u32) => {
                    Some((key, cursor as u32))
                }
                _ => None,
            }
        })
    }

    /// The vectors of those of `keys` the graph holds, as int8 codes in order in one block.
    pub fn pack(&self, keys: impl Iterator<Item = u64>) -> Packed {
        let width = code_width(self.dim);
        let mut packed = Packed::default();
        let mut vector = Vec::with_capacity(self.dim);
        for (key, slot) in self.slots_of(keys) {
            self.decode(slot, &mut vector);
            let start = packed.codes.len();
            packed.codes.resize(start + width, 0);
            let codes = &mut packed.codes[start..];
            packed.scales.push(quantize(&vector, codes));
            packed
                .code_sums
                .push(codes.iter().map(|&c| i32::from(c)).sum());
            packed.sq_norms.push((self.kernels.dot)(&vector, &vector));
            packed.keys.push(key);
            packed.slots.push(slot);
        }
        packed
    }

    /// `q` quantized for estimates against rows packed by this graph.
    pub fn query_codes(&self, q: &[f32]) -> QueryCodes {
        let mut signed = vec![0i8; code_width(self.dim)];
        let scale = quantize(q, &mut signed);
        QueryCodes {
            codes: signed.iter().map(|&c| (i16::from(c) + 128) as u8).collect(),
            scale,
            sq_norm: (self.kernels.dot)(q, q),
        }
    }

    /// Sets `out` to the estimated distances of `q` to rows `rows` of `packed` (made by
    /// [`Hnsw::pack`] of this graph), in order.
    pub fn packed_estimates(
        &self,
        q: &QueryCodes,
        packed: &Packed,
        rows: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) {
        let width = q.codes.len();
        out.clear();
        out.resize(rows.len(), 0.0);
        (self.kernels.dot_codes_rows)(
            &q.codes,
            &packed.codes[rows.start * width..rows.end * width],
            out,
        );
        let scales = &packed.scales[rows.clone()];
        let code_sums = &packed.code_sums[rows.clone()];
        for ((d, scale), code_sum) in out.iter_mut().zip(scales).zip(code_sums) {
            *d = q.scale * scale * (*d - (128 * code_sum) as f32);
        }
        match self.space {
            Space::L2 => {
                for (d, n) in out.iter_mut().zip(&packed.sq_norms[rows]) {
                    *d = q.sq_norm + n - 2.0 * *d;
                }
            }
            _ => out.iter_mut().for_each(|d| *d = 1.0 - *d),
        }
    }

    /// The key of row `row` of `packed` and its distance to `q` from the graph's vector.
    pub fn packed_distance(&self, q: &[f32], packed: &Packed, row: usize) -> (u64, f32) {
        (packed.keys[row], self.dist(q, packed.slots[row]))
    }

    /// Writes the stored vector of `key` (unit length for cosine, rounded to float16 in a
    /// float16 graph) into `out`; returns whether the key is there.
    pub fn get(&self, key: u64, out: &mut Vec<f32>) -> bool {
        match self.slot_of.get(&key) {
            Some(&slot) => {
                self.decode(slot, out);
                true
            }
            None => false,
        }
    }

    /// The distance of `q` to `key`'s vector, `None` when absent. `q` is taken as it is:
    /// callers of a cosine graph pass it at unit length (searches normalize their query).
    pub fn distance_to(&self, q: &[f32], key: u64) -> Option<f32> {
        self.slot_of.get(&key).map(|&slot| self.dist(q, slot))
    }

    fn is_removed(&self, slot: u32) -> bool {
        self.removed[slot as usize / 64] >> (slot % 64) & 1 == 1
    }

    /// Removes `key` (its node stays as a tombstone that routes searches); returns whether
    /// it was there.
    pub fn remove(&mut self, key: u64) -> bool {
        let Some(slot) = self.slot_of.remove(&key) else {
            return false;
        };
        self.removed[slot as usize / 64] |= 1 << (slot % 64);
        self.removed_count += 1;
        true
    }

    /// Writes the graph to `path` (replaced whole: written to a sibling file, then renamed).
    ///
    /// # Errors
    /// `Storage` when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let io = |e: std::io::Error| Error::Storage(format!("writing {}: {e}", tmp.display()));
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let entry = *self.entry.read().unwrap_or_else(|e| e.into_inner());
        let space = match self.space {
            Space::L2 => 0u64,
            Space::Ip => 1,
            Space::Cosine => 2,
        };
        let (entry_slot, top) = entry.map_or((u64::MAX, 0), |(s, l)| (u64::from(s), l as u64));
        w.write_all(FILE_MAGIC).map_err(io)?;
        for value in [
            self.dim as u64,
            space,
            self.params.m as u64,
            self.params.ef_construction as u64,
            self.params.seed,
            u64::from(self.storage() == Storage::F16),
            self.keys.len() as u64,
            entry_slot,
            top,
        ] {
            w.write_all(&value.to_le_bytes()).map_err(io)?;
        }
        for key in &self.keys {
            w.write_all(&key.to_le_bytes()).map_err(io)?;
        }
        w.write_all(&self.levels).map_err(io)?;
        for x in &self.vectors {
            w.write_all(&x.to_le_bytes()).map_err(io)?;
        }
        for h in &self.halves {
            w.write_all(&h.to_le_bytes()).map_err(io)?;
        }
        for cell in self.links0.iter().chain(
            (0..self.keys.len() as u32)
                .flat_map(|slot| self.upper.get(&slot).into_iter().flat_map(|u| u.iter())),
        ) {
            w.write_all(&cell.load(Ordering::Relaxed).to_le_bytes())
                .map_err(io)?;
        }
        for word in &self.removed {
            w.write_all(&word.to_le_bytes()).map_err(io)?;
        }
        w.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::Storage(format!("renaming to {}: {e}", path.display())))
    }

    /// Reads a graph written by [`Hnsw::save`].
    ///
    /// # Errors
    /// `Storage` when the file cannot be read or is not a graph of this format.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |what: &str| Error::Storage(format!("{}: {what}", path.display()));
        let io = |e: std::io::Error| Error::Storage(format!("reading {}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(io)?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(io)?;
        if &magic != FILE_MAGIC {
            return Err(bad("not a ferrostore HNSW graph (bad magic)"));
        }
        let header = read_u64s(&mut r, 9).map_err(io)?;
        let [dim, space, m, ef_construction, seed, half, n, entry_slot, top] = header[..] else {
            return Err(bad("short header"));
        };
        let space = match space {
            0 => Space::L2,
            1 => Space::Ip,
            2 => Space::Cosine,
            _ => return Err(bad("unknown space")),
        };
        let params = HnswParams {
            m: usize::try_from(m).map_err(|_| bad("bad m"))?,
            ef_construction: usize::try_from(ef_construction).map_err(|_| bad("bad ef"))?,
            seed,
            storage: match half {
                0 => Storage::F32,
                1 => Storage::F16,
                _ => return Err(bad("unknown storage")),
            },
        };
        let dim = usize::try_from(dim).map_err(|_| bad("bad dimension"))?;
        let mut graph = Hnsw::new(dim, space, params).map_err(|_| bad("bad header"))?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or_else(|| bad("bad node count"))?;
        graph.keys = read_u64s(&mut r, n).map_err(io)?;
        let mut levels = vec![0u8; n];
        r.read_exact(&mut levels).map_err(io)?;
        if levels.iter().any(|&l| usize::from(l) > MAX_LEVEL) {
            return Err(bad("a node level is out of range"));
        }
        match graph.storage() {
            Storage::F32 => {
                graph.vectors = read_u32s(&mut r, n * dim)
                    .map_err(io)?
                    .into_iter()
                    .map(f32::from_bits)
                    .collect();
            }
            Storage::F16 => {
                let mut buf = vec![0u8; n * dim * 2];
                r.read_exact(&mut buf).map_err(io)?;
                graph.halves = buf
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
            }
        }
        let width0 = graph.m0() + 1;
        let upper_width = graph.params.m + 1;
        let cells = read_u32s(&mut r, n * width0).map_err(io)?;
        if !links_valid(&cells, width0, n) {
            return Err(bad("a level-0 link is out of range"));
        }
        graph.links0 = cells.into_iter().map(AtomicU32::new).collect();
        for (slot, &level) in levels.iter().enumerate() {
            if level == 0 {
                continue;
            }
            let cells = read_u32s(&mut r, usize::from(level) * upper_width).map_err(io)?;
            let on_level = cells
                .chunks_exact(upper_width)
                .enumerate()
                .all(|(i, list)| {
                    let count = (list[0] as usize).min(upper_width - 1);
                    list[1..=count]
                        .iter()
                        .all(|&id| levels.get(id as usize).is_some_and(|&l| usize::from(l) > i))
                });
            if !links_valid(&cells, upper_width, n) || !on_level {
                return Err(bad("an upper-level link is out of range"));
            }
            graph
                .upper
                .insert(slot as u32, cells.into_iter().map(AtomicU32::new).collect());
        }
        graph.levels = levels;
        graph.keys_ascending = graph.keys.windows(2).all(|w| w[0] < w[1]);
        graph.removed = read_u64s(&mut r, n.div_ceil(64)).map_err(io)?;
        for (slot, key) in graph.keys.iter().enumerate() {
            if !graph.is_removed(slot as u32) {
                graph.slot_of.insert(*key, slot as u32);
            } else {
                graph.removed_count += 1;
            }
        }
        if entry_slot == u64::MAX && n > 0 {
            return Err(bad("nodes without an entry point"));
        }
        if entry_slot != u64::MAX {
            if entry_slot as usize >= n
                || top as usize > MAX_LEVEL
                || u64::from(graph.levels[entry_slot as usize]) < top
            {
                return Err(bad("the entry point is out of range"));
            }
            *graph.entry.get_mut().unwrap_or_else(|e| e.into_inner()) =
                Some((entry_slot as u32, top as usize));
        }
        Ok(graph)
    }
}

/// Dot product and squared l2 distance of equal-length slices.
#[derive(Clone, Copy)]
struct Kernels {
    dot: fn(&[f32], &[f32]) -> f32,
    l2: fn(&[f32], &[f32]) -> f32,
    dot_half: fn(&[f32], &[u16]) -> f32,
    l2_half: fn(&[f32], &[u16]) -> f32,
    /// Float16 values into float32 (equal lengths).
    widen: fn(&[u16], &mut [f32]),
    /// Float32 values into float16, rounded to nearest even (equal lengths).
    narrow: fn(&[f32], &mut [u16]),
    /// The dot products of unsigned bytes `q` (a multiple of 64 long) with each of the
    /// rows of signed bytes laid end to end in `rows`, into `out` (one per row; exact up to
    /// 2^24, which 384 dimensions stay within).
    dot_codes_rows: fn(&[u8], &[i8], &mut [f32]),
}

/// The fastest kernels this CPU runs, chosen once per process.
fn cpu_kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(Kernels::for_cpu)
}

/// `a · b` over float32 values (equal lengths) with the fastest kernel this CPU runs.
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    (cpu_kernels().dot)(a, b)
}

/// `|a - b|²` over float32 values (equal lengths) with the fastest kernel this CPU runs.
pub(super) fn l2_f32(a: &[f32], b: &[f32]) -> f32 {
    (cpu_kernels().l2)(a, b)
}

impl Kernels {
    /// The fastest kernels this CPU runs.
    fn for_cpu() -> Kernels {
        Kernels::available()[0].1
    }

    /// Every kernel set this CPU runs, fastest first, named.
    fn available() -> Vec<(&'static str, Kernels)> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY (all four): the CPU has AVX-512F (checked above).
                out.push((
                    "avx512",
                    Kernels {
                        dot: |a, b| unsafe { simd512::dot(a, b) },
                        l2: |a, b| unsafe { simd512::l2(a, b) },
                        dot_half: |a, b| unsafe { simd512::dot_half(a, b) },
                        l2_half: |a, b| unsafe { simd512::l2_half(a, b) },
                        widen: |h, out| unsafe { simd512::widen(h, out) },
                        narrow: |x, out| unsafe { simd512::narrow(x, out) },
                        dot_codes_rows: codes_kernel(),
                    },
                ));
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                // SAFETY (all four): the CPU has AVX2, FMA and F16C (checked above).
                out.push((
                    "avx2",
                    Kernels {
                        dot: |a, b| unsafe { simd::dot(a, b) },
                        l2: |a, b| unsafe { simd::l2(a, b) },
                        dot_half: |a, b| unsafe { simd::dot_half(a, b) },
                        l2_half: |a, b| unsafe { simd::l2_half(a, b) },
                        widen: |h, out| unsafe { simd::widen(h, out) },
                        narrow: |x, out| unsafe { simd::narrow(x, out) },
                        // SAFETY: the CPU has AVX2 (checked above).
                        dot_codes_rows: |q, rows, out| unsafe { dot_codes_avx2(q, rows, out) },
                    },
                ));
            }
        }
        out.push((
            "plain",
            Kernels {
                dot: |a, b| lanes(a, b, |x, y| x * y),
                l2: |a, b| lanes(a, b, |x, y| (x - y) * (x - y)),
                dot_half: |a, b| {
                    a.iter()
                        .zip(b)
                        .map(|(x, h)| x * super::f16_bits_to_f32(*h))
                        .sum()
                },
                l2_half: |a, b| {
                    a.iter()
                        .zip(b)
                        .map(|(x, h)| (x - super::f16_bits_to_f32(*h)).powi(2))
                        .sum()
                },
                widen: |h, out| {
                    for (o, h) in out.iter_mut().zip(h) {
                        *o = super::f16_bits_to_f32(*h);
                    }
                },
                narrow: |x, out| {
                    for (o, x) in out.iter_mut().zip(x) {
                        *o = f32_to_f16_bits(*x);
                    }
                },
                dot_codes_rows: dot_codes_plain,
            },
        ));
        out
    }
}

#[inline(always)]
fn dot_codes_plain(q: &[u8], rows: &[i8], out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(q.len()).zip(out) {
        *o = q
            .iter()
            .zip(row)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum::<i32>() as f32;
    }
}

/// [`dot_codes_plain`] compiled for AVX2 (the compiler vectorizes it).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_codes_avx2(q: &[u8], rows: &[i8], out: &mut [f32]) {
    dot_codes_plain(q, rows, out);
}

/// The int8 kernel of an AVX-512 CPU: VNNI's when it has it.
#[cfg(target_arch = "x86_64")]
fn codes_kernel() -> fn(&[u8], &[i8], &mut [f32]) {
    if std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
    {
        // SAFETY: the CPU has AVX-512BW and VNNI (checked above).
        |q, rows, out| unsafe { dot_codes_vnni(q, rows, out) }
    } else {
        // SAFETY: an AVX-512 CPU has AVX2.
        |q, rows, out| unsafe { dot_codes_avx2(q, rows, out) }
    }
}

/// [`dot_codes_plain`] in 64-byte blocks, one `vpdpbusd` each, two sums in flight.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW and AVX-512 VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_codes_vnni(q: &[u8], rows: &[i8], out: &mut [f32]) {
    use std::arch::x86_64::{
        _mm512_add_epi32, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_reduce_add_epi32,
        _mm512_setzero_si512,
    };
    let width = q.len();
    assert!(width.is_multiple_of(64), "rows of {width} codes");
    let pq = q.as_ptr();
    for (row, o) in rows.chunks_exact(width).zip(out) {
        let pr = row.as_ptr();
        let (mut even, mut odd) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let mut i = 0;
        // SAFETY: every block read ends at or before `width`, within `q` and `row`.
        unsafe {
            while i + 128 <= width {
                even = _mm512_dpbusd_epi32(
                    even,
                    _mm512_loadu_si512(pq.add(i).cast()),
                    _mm512_loadu_si512(pr.add(i).cast()),
                );
                odd = _mm512_dpbusd_epi32(
                    odd,
                    _mm512_loadu_si512(pq.add(i + 64).cast()),
                    _mm512_loadu_si512(pr.add(i + 64).cast()),
                );
                i += 128;
            }
            if i < width {
                even = _mm512_dpbusd_epi32(
                    even,
                    _mm512_loadu_si512(pq.add(i).cast()),
                    _mm512_loadu_si512(pr.add(i).cast()),
                );
            }
        }
        *o = _mm512_reduce_add_epi32(_mm512_add_epi32(even, odd)) as f32;
    }
}

/// `x` as IEEE half-float bits, rounded to nearest even (overflow gives infinity).
fn f32_to_f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x007f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal: shift the mantissa, with its implicit one, into place.
        let m = mant | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rest = m & ((1 << shift) - 1);
        let halfway = 1 << (shift - 1);
        let up = rest > halfway || (rest == halfway && half & 1 == 1);
        return sign | (half + u32::from(up)) as u16;
    }
    let h = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    let up = rest > 0x1000 || (rest == 0x1000 && h & 1 == 1);
    // A carry out of the mantissa moves to the next exponent, as rounding should.
    sign | (h + u32::from(up)) as u16
}

/// The distance and conversion kernels of one SIMD width, for a module that defines, for its
/// CPU features `$feature`: the register type `V`, its lane count `LANES`, and `zero`, `add`,
/// `sub`, `fmadd` and `sum` over registers, `load`/`store` of float32 lanes and
/// `load_half`/`store_half` of float16 ones (widened / narrowed to nearest even).
#[cfg(target_arch = "x86_64")]
macro_rules! simd_kernels {
    ($feature:literal) => {
        /// Element types a kernel reads `LANES` at a time as float32 lanes.
        trait Lanes: Copy {
            /// # Safety
            /// `LANES` elements from `p` must be readable; the CPU must have `$feature`.
            unsafe fn lanes(p: *const Self) -> V;
            fn widen(self) -> f32;
        }

        impl Lanes for f32 {
            #[inline(always)]
            unsafe fn lanes(p: *const f32) -> V {
                // SAFETY: as the trait requires.
                unsafe { load(p) }
            }
            #[inline(always)]
            fn widen(self) -> f32 {
                self
            }
        }

        impl Lanes for u16 {
            #[inline(always)]
            unsafe fn lanes(p: *const u16) -> V {
                // SAFETY: as the trait requires.
                unsafe { load_half(p) }
            }
            #[inline(always)]
            fn widen(self) -> f32 {
                super::super::f16_bits_to_f32(self)
            }
        }

        /// Sums `(a[i] - b[i])²` (`l2`) or `a[i] * b[i]` over blocks of `LANES` with four
        /// accumulators, then the tail.
        #[inline]
        #[target_feature(enable = $feature)]
        fn fold<T: Lanes, const L2: bool>(a: &[f32], b: &[T]) -> f32 {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let step = |acc: V, x: V, y: V| {
                if L2 {
                    let d = sub(x, y);
                    fmadd(d, d, acc)
                } else {
                    fmadd(x, y, acc)
                }
            };
            let mut acc = [zero(); 4];
            let mut i = 0;
            while i + 4 * LANES <= n {
                for (j, slot) in acc.iter_mut().enumerate() {
                    // SAFETY: i + LANES * (j + 1) <= n: both reads are in bounds.
                    let (x, y) =
                        unsafe { (load(pa.add(i + LANES * j)), T::lanes(pb.add(i + LANES * j))) };
                    *slot = step(*slot, x, y);
                }
                i += 4 * LANES;
            }
            let mut total = add(add(acc[0], acc[1]), add(acc[2], acc[3]));
            while i + LANES <= n {
                // SAFETY: i + LANES <= n.
                let (x, y) = unsafe { (load(pa.add(i)), T::lanes(pb.add(i))) };
                total = step(total, x, y);
                i += LANES;
            }
            if i == n {
                // No tail (most dimensions): return before the tail's widening calls, which
                // would spill the sum to the stack.
                return sum(total);
            }
            let tail: f32 = a[i..n]
                .iter()
                .zip(&b[i..n])
                .map(|(x, y)| {
                    let y = y.widen();
                    if L2 {
                        (x - y) * (x - y)
                    } else {
                        x * y
                    }
                })
                .sum();
            sum(total) + tail
        }

        /// # Safety
        /// The CPU must have the module's features.
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
            fold::<f32, false>(a, b)
        }

        /// # Safety
        /// As [`dot`].
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn l2(a: &[f32], b: &[f32]) -> f32 {
            fold::<f32, true>(a, b)
        }

        /// # Safety
        /// As [`dot`].
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn dot_half(a: &[f32], b: &[u16]) -> f32 {
            fold::<u16, false>(a, b)
        }

        /// # Safety
        /// As [`dot`].
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn l2_half(a: &[f32], b: &[u16]) -> f32 {
            fold::<u16, true>(a, b)
        }

        /// # Safety
        /// As [`dot`].
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn widen(h: &[u16], out: &mut [f32]) {
            let n = h.len().min(out.len());
            let mut i = 0;
            while i + LANES <= n {
                // SAFETY: i + LANES <= n for both slices.
                unsafe { store(out.as_mut_ptr().add(i), load_half(h.as_ptr().add(i))) };
                i += LANES;
            }
            for (o, h) in out[i..n].iter_mut().zip(&h[i..n]) {
                *o = h.widen();
            }
        }

        /// # Safety
        /// As [`dot`].
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn narrow(x: &[f32], out: &mut [u16]) {
            let n = x.len().min(out.len());
            let mut i = 0;
            while i + LANES <= n {
                // SAFETY: i + LANES <= n for both slices.
                unsafe { store_half(out.as_mut_ptr().add(i), load(x.as_ptr().add(i))) };
                i += LANES;
            }
            for (o, x) in out[i..n].iter_mut().zip(&x[i..n]) {
                *o = super::f32_to_f16_bits(*x);
            }
        }
    };
}

/// The kernels on 16 lanes (AVX-512F): a float16 vector converts 16 values an instruction,
/// twice as many as with F16C on 8 lanes, which bounds the float16 kernels there.
#[cfg(target_arch = "x86_64")]
mod simd512 {
    use std::arch::x86_64::{
        __m256i, __m512, _mm256_loadu_si256, _mm256_storeu_si256, _mm512_add_ps, _mm512_cvtph_ps,
        _mm512_cvtps_ph, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
        _mm512_storeu_ps, _mm512_sub_ps, _MM_FROUND_TO_NEAREST_INT,
    };

    type V = __m512;
    const LANES: usize = 16;

    #[inline(always)]
    fn zero() -> V {
        // SAFETY: only called from functions that require AVX-512F.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn add(a: V, b: V) -> V {
        // SAFETY: as `zero`.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(a: V, b: V) -> V {
        // SAFETY: as `zero`.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn fmadd(a: V, b: V, c: V) -> V {
        // SAFETY: as `zero`.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn sum(v: V) -> f32 {
        // SAFETY: as `zero`.
        unsafe { _mm512_reduce_add_ps(v) }
    }
    /// # Safety
    /// 16 floats from `p` readable; AVX-512F.
    #[inline(always)]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: as this function requires.
        unsafe { _mm512_loadu_ps(p) }
    }
    /// # Safety
    /// 16 floats at `p` writable; AVX-512F.
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: as this function requires.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    /// # Safety
    /// 16 halves from `p` readable; AVX-512F.
    #[inline(always)]
    unsafe fn load_half(p: *const u16) -> V {
        // SAFETY: as this function requires.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast::<__m256i>())) }
    }
    /// # Safety
    /// 16 halves at `p` writable; AVX-512F.
    #[inline(always)]
    unsafe fn store_half(p: *mut u16, v: V) {
        // SAFETY: as this function requires.
        unsafe {
            _mm256_storeu_si256(
                p.cast::<__m256i>(),
                _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v),
            )
        }
    }

    simd_kernels!("avx512f");
}

/// The kernels on 8 lanes (AVX2, FMA and F16C).
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::{
        __m128i, __m256, _mm256_add_ps, _mm256_castps256_ps128, _mm256_cvtph_ps, _mm256_cvtps_ph,
        _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps, _mm256_sub_ps, _mm_add_ps, _mm_cvtss_f32, _mm_loadu_si128, _mm_movehl_ps,
        _mm_shuffle_ps, _mm_storeu_si128, _MM_FROUND_TO_NEAREST_INT,
    };

    type V = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    fn zero() -> V {
        // SAFETY: only called from functions that require AVX2, FMA and F16C.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn add(a: V, b: V) -> V {
        // SAFETY: as `zero`.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(a: V, b: V) -> V {
        // SAFETY: as `zero`.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn fmadd(a: V, b: V, c: V) -> V {
        // SAFETY: as `zero`.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn sum(v: V) -> f32 {
        // SAFETY: as `zero`.
        unsafe {
            let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
            _mm_cvtss_f32(_mm_add_ps(pair, _mm_shuffle_ps::<1>(pair, pair)))
        }
    }
    /// # Safety
    /// 8 floats from `p` readable; AVX2.
    #[inline(always)]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: as this function requires.
        unsafe { _mm256_loadu_ps(p) }
    }
    /// # Safety
    /// 8 floats at `p` writable; AVX2.
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: as this function requires.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    /// # Safety
    /// 8 halves from `p` readable; F16C.
    #[inline(always)]
    unsafe fn load_half(p: *const u16) -> V {
        // SAFETY: as this function requires.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>())) }
    }
    /// # Safety
    /// 8 halves at `p` writable; F16C.
    #[inline(always)]
    unsafe fn store_half(p: *mut u16, v: V) {
        // SAFETY: as this function requires.
        unsafe {
            _mm_storeu_si128(
                p.cast::<__m128i>(),
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v),
            )
        }
    }

    simd_kernels!("avx2,fma,f16c");
}

/// Makes room for `additional` more elements, doubling the capacity when it grows. A grown
/// array is a new allocation advised onto huge pages before the elements are copied in: a
/// reallocation would move the old 4 KiB pages as they are, and a graph grown batch by
/// batch would search on them (measured: 25% fewer queries per second).
fn grow_on_huge_pages<T>(v: &mut Vec<T>, additional: usize, copy: impl Fn(&T) -> T) {
    if v.capacity() - v.len() >= additional {
        return;
    }
    let capacity = (v.len() + additional).max(v.capacity() * 2);
    let mut grown = Vec::with_capacity(capacity);
    advise_huge_pages(&grown);
    grown.extend(v.iter().map(copy));
    *v = grown;
}

/// Asks Linux to back the whole 2 MiB pages of `v`'s allocation with huge pages (pages
/// already touched are merged later by the kernel). Advice only: failures are ignored.
fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<T>();
        let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if last > first {
            // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE changes how
            // pages are backed, never their contents.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// The first index at or after `from` whose key is not below `key` (`keys` ascending):
/// galloping, so a run of nearby keys costs a few comparisons each.
fn seek(keys: &[u64], from: usize, key: u64) -> usize {
    let (mut lo, mut hi, mut step) = (from, from, 1);
    while hi < keys.len() && keys[hi] < key {
        lo = hi + 1;
        hi += step;
        step *= 2;
    }
    let hi = hi.min(keys.len());
    lo + keys[lo..hi].partition_point(|&k| k < key)
}

fn read_u64s(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u64>> {
    let mut buf = vec![0u8; n * 8];
    r.read_exact(&mut buf)?;
    Ok(buf
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

fn read_u32s(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u32>> {
    let mut buf = vec![0u8; n * 4];
    r.read_exact(&mut buf)?;
    Ok(buf
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Whether `cells` hold link lists of `width` cells (a count, then ids) naming slots below `n`.
fn links_valid(cells: &[u32], width: usize, n: usize) -> bool {
    cells.chunks_exact(width).all(|list| {
        let count = list[0] as usize;
        count < width && list[1..=count].iter().all(|&id| (id as usize) < n)
    })
}

#[cfg(test)]
pub(super) mod tests;

use super::*;

/// Deterministic uniform numbers in [-1, 1) (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `n` vectors around `clusters` random centres (the shape of real embeddings).
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.next()).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % clusters];
            c.iter().map(|x| x + 0.25 * rng.next()).collect()
        })
        .collect()
}

fn build(space: Space, vectors: &[Vec<f32>], batches: usize) -> Hnsw {
    build_stored(space, Storage::F32, vectors, batches)
}

fn build_stored(space: Space, storage: Storage, vectors: &[Vec<f32>], batches: usize) -> Hnsw {
    let params = HnswParams {
        storage,
        ..HnswParams::default()
    };
    let mut graph = Hnsw::new(vectors[0].len(), space, params).unwrap();
    let items: Vec<(u64, &[f32])> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64 * 3 + 7, v.as_slice()))
        .collect();
    for part in items.chunks(items.len().div_ceil(batches)) {
        graph.add(part).unwrap();
    }
    graph
}

fn all_keys(graph: &Hnsw) -> Vec<u64> {
    let mut keys: Vec<u64> = graph.slot_of.keys().copied().collect();
    keys.sort_unstable();
    keys
}

/// Mean recall@k of the graph search against exact search over every key.
fn recall(graph: &Hnsw, queries: &[Vec<f32>], k: usize, ef: usize) -> f64 {
    let keys = all_keys(graph);
    let mut hits = 0usize;
    for q in queries {
        let truth: Vec<u64> = graph
            .exact(q, k, &keys)
            .unwrap()
            .iter()
            .map(|h| h.0)
            .collect();
        let found = graph.search(q, k, ef, None).unwrap();
        assert_eq!(found.len(), k);
        assert!(
            found.windows(2).all(|w| w[0].1 <= w[1].1),
            "sorted nearest first"
        );
        hits += found.iter().filter(|h| truth.contains(&h.0)).count();
    }
    hits as f64 / (queries.len() * k) as f64
}

#[test]
fn search_finds_the_true_neighbours_in_every_space() {
    let vectors = clustered(3000, 24, 30, 1);
    let queries = clustered(100, 24, 30, 2);
    // Inner product over unit vectors, as embeddings are (on raw vectors ip is no metric).
    let mut units = vectors.clone();
    units.iter_mut().for_each(|v| normalize(v));
    for space in [Space::L2, Space::Ip, Space::Cosine] {
        let graph = build(space, if space == Space::Ip { &units } else { &vectors }, 1);
        assert_eq!(graph.len(), 3000);
        let r = recall(&graph, &queries, 10, 64);
        assert!(r >= 0.95, "{space:?}: recall@10 {r}");
    }
}

#[test]
fn a_graph_built_in_many_batches_is_as_good() {
    let vectors = clustered(3000, 16, 20, 3);
    let queries = clustered(100, 16, 20, 4);
    let graph = build(Space::L2, &vectors, 12);
    // Nodes linked in parallel make every build a little different: ef 96 leaves a margin
    // (recall@10 0.97-0.98 at ef 64 over many builds, 0.946 once).
    let r = recall(&graph, &queries, 10, 96);
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn distances_are_chromas() {
    let mut graph = Hnsw::new(2, Space::Cosine, HnswParams::default()).unwrap();
    graph
        .add(&[(1, &[3.0, 4.0][..]), (2, &[0.0, -2.0][..])])
        .unwrap();
    let found = graph.search(&[6.0, 8.0], 2, 8, None).unwrap();
    assert_eq!(found[0].0, 1);
    assert!(found[0].1.abs() < 1e-6);
    assert!((found[1].1 - 1.8).abs() < 1e-6, "1 - cos = 1 + 0.8");
    let mut l2 = Hnsw::new(2, Space::L2, HnswParams::default()).unwrap();
    l2.add(&[(9, &[1.0, 1.0][..])]).unwrap();
    assert_eq!(l2.search(&[4.0, 5.0], 1, 8, None).unwrap(), vec![(9, 25.0)]);
    let mut ip = Hnsw::new(2, Space::Ip, HnswParams::default()).unwrap();
    ip.add(&[(5, &[0.5, 0.25][..])]).unwrap();
    assert_eq!(ip.search(&[2.0, 2.0], 1, 8, None).unwrap(), vec![(5, -0.5)]);
}

#[test]
fn exact_ranks_a_subset_with_ties_to_the_smaller_key() {
    let mut graph = Hnsw::new(2, Space::L2, HnswParams::default()).unwrap();
    let points = [
        (10, [1.0, 0.0]),
        (4, [0.0, 1.0]),
        (7, [1.0, 0.0]),
        (2, [5.0, 5.0]),
    ];
    let items: Vec<(u64, &[f32])> = points.iter().map(|(k, v)| (*k, &v[..])).collect();
    graph.add(&items).unwrap();
    assert_eq!(graph.distance_to(&[0.0, 0.0], 2), Some(50.0));
    assert_eq!(graph.distance_to(&[0.0, 0.0], 99), None);
    let got = graph.exact(&[0.0, 0.0], 3, &[10, 7, 2, 99, 4]).unwrap();
    assert_eq!(got, vec![(4, 1.0), (7, 1.0), (10, 1.0)]);
    assert_eq!(
        graph.exact(&[0.0, 0.0], 2, &[2, 10]).unwrap(),
        vec![(10, 1.0), (2, 50.0)]
    );
}

#[test]
fn removed_keys_are_never_returned_and_a_key_added_again_replaces_its_vector() {
    let vectors = clustered(1500, 8, 10, 5);
    let mut graph = build(Space::L2, &vectors, 2);
    let keys = all_keys(&graph);
    for key in keys.iter().step_by(3) {
        assert!(graph.remove(*key));
        assert!(!graph.remove(*key), "second removal finds nothing");
    }
    assert_eq!(graph.len(), 1000);
    for q in clustered(50, 8, 10, 6) {
        for (key, _) in graph.search(&q, 20, 64, None).unwrap() {
            assert!(graph.contains(key));
            assert_ne!(keys.iter().position(|k| *k == key).unwrap() % 3, 0);
        }
    }
    // Key kept moves next to another point of the data.
    let kept = keys[1];
    let moved: Vec<f32> = vectors[500].iter().map(|x| x + 0.01).collect();
    graph.add(&[(kept, &moved[..])]).unwrap();
    assert_eq!(graph.len(), 1000);
    let mut stored = Vec::new();
    assert!(graph.get(kept, &mut stored));
    assert_eq!(stored, moved);
    assert_eq!(
        graph.search(&moved, 1, 32, None).unwrap(),
        vec![(kept, 0.0)]
    );
}

#[test]
fn filtered_search_returns_only_admitted_keys_with_recall() {
    let vectors = clustered(3000, 16, 30, 7);
    let graph = build(Space::L2, &vectors, 1);
    let even: Vec<u64> = all_keys(&graph)
        .into_iter()
        .filter(|k| k % 2 == 0)
        .collect();
    let admit = |key: u64| key.is_multiple_of(2);
    let mut hits = 0;
    let queries = clustered(100, 16, 30, 8);
    for q in &queries {
        let truth: Vec<u64> = graph
            .exact(q, 10, &even)
            .unwrap()
            .iter()
            .map(|h| h.0)
            .collect();
        let found = graph.search(q, 10, 64, Some(&admit)).unwrap();
        assert_eq!(found.len(), 10);
        assert!(found.iter().all(|h| admit(h.0)));
        hits += found.iter().filter(|h| truth.contains(&h.0)).count();
    }
    let r = hits as f64 / 1000.0;
    assert!(r >= 0.95, "filtered recall@10 {r}");
}

/// Live slots that level 0 cannot reach from the entry point.
fn unreachable(graph: &Hnsw) -> Vec<u32> {
    let Some((entry, _)) = *graph.entry.read().unwrap() else {
        return Vec::new();
    };
    let mut reached = vec![false; graph.keys.len()];
    reached[entry as usize] = true;
    let mut pending = vec![entry];
    let mut links = Vec::new();
    while let Some(slot) = pending.pop() {
        graph.neighbours(slot, 0, &mut links);
        for &n in &links {
            if !std::mem::replace(&mut reached[n as usize], true) {
                pending.push(n);
            }
        }
    }
    (0..graph.keys.len() as u32)
        .filter(|&s| !reached[s as usize] && !graph.is_removed(s))
        .collect()
}

#[test]
fn every_node_stays_reachable() {
    // Few links and a small beam on uniform vectors: pruning drops hundreds of nodes from
    // every list that held them. With a beam of one, the search for a cut-off node can end
    // on the node itself.
    let mut rng = Rng(11);
    let vectors: Vec<Vec<f32>> = (0..20_000)
        .map(|_| (0..16).map(|_| rng.next()).collect())
        .collect();
    let items: Vec<(u64, &[f32])> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    for (m, ef_construction) in [(3, 8), (2, 1)] {
        let params = HnswParams {
            m,
            ef_construction,
            ..HnswParams::default()
        };
        let mut graph = Hnsw::new(16, Space::L2, params).unwrap();
        for part in items.chunks(2500) {
            graph.add(part).unwrap();
            assert_eq!(unreachable(&graph), Vec::<u32>::new(), "m {m}");
        }
        for key in (0..20_000).step_by(7) {
            graph.remove(key);
        }
        // Too few to reconnect on their own: saving a checkpoint does it.
        graph.add(&items[..100]).unwrap();
        graph.connect_if_added();
        assert_eq!(unreachable(&graph), Vec::<u32>::new(), "m {m}");
        assert_eq!(graph.connect_if_added(), 0);
    }
}

#[test]
fn nodes_find_themselves() {
    // Roughly normal values (sums of uniform ones): the outliers are the nodes at risk.
    let mut rng = Rng(12);
    let vectors: Vec<Vec<f32>> = (0..20_000)
        .map(|_| {
            (0..16)
                .map(|_| rng.next() + rng.next() + rng.next())
                .collect()
        })
        .collect();
    let graph = build(Space::L2, &vectors, 8);
    let missed: Vec<usize> = (0..vectors.len())
        .filter(|&i| graph.search(&vectors[i], 1, 64, None).unwrap()[0].0 != i as u64 * 3 + 7)
        .collect();
    assert!(missed.len() < 3, "{missed:?} miss their own vector");
}

#[test]
fn small_and_empty_graphs() {
    let mut graph = Hnsw::new(3, Space::L2, HnswParams::default()).unwrap();
    assert!(graph.is_empty());
    assert_eq!(graph.search(&[0.0; 3], 5, 10, None).unwrap(), vec![]);
    graph
        .add(&[(1, &[0.0, 0.0, 1.0][..]), (2, &[0.0, 0.0, 2.0][..])])
        .unwrap();
    assert_eq!(graph.search(&[0.0; 3], 0, 10, None).unwrap(), vec![]);
    let found = graph.search(&[0.0; 3], 5, 1, None).unwrap();
    assert_eq!(found, vec![(1, 1.0), (2, 4.0)]);
    graph.add(&[]).unwrap();
    assert_eq!(graph.len(), 2);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    assert!(matches!(
        Hnsw::new(0, Space::L2, HnswParams::default()),
        Err(Error::InvalidArgument(_))
    ));
    let params = HnswParams {
        m: 1,
        ..HnswParams::default()
    };
    assert!(matches!(
        Hnsw::new(4, Space::L2, params),
        Err(Error::InvalidArgument(_))
    ));
    let mut graph = Hnsw::new(2, Space::L2, HnswParams::default()).unwrap();
    graph.add(&[(1, &[1.0, 1.0][..])]).unwrap();
    let cases: [&[(u64, &[f32])]; 3] = [
        &[(2, &[1.0, 2.0]), (3, &[1.0])],
        &[(2, &[1.0, 2.0]), (3, &[f32::NAN, 0.0])],
        &[(2, &[1.0, 2.0]), (2, &[3.0, 4.0])],
    ];
    for items in cases {
        let err = graph.add(items).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert_eq!(graph.len(), 1);
        assert!(!graph.contains(2));
    }
    let err = graph.add(&[(1, &[f32::INFINITY, 0.0][..])]).unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    let mut stored = Vec::new();
    assert!(graph.get(1, &mut stored));
    assert_eq!(stored, [1.0, 1.0], "a refused replacement keeps the old");
    assert!(matches!(
        graph.search(&[1.0], 1, 8, None),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        graph.search(&[f32::NAN, 1.0], 1, 8, None),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_saved_graph_loads_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.hnsw");
    let vectors = clustered(2000, 12, 20, 9);
    let mut graph = build(Space::Cosine, &vectors, 3);
    graph.remove(7);
    graph.save(&path).unwrap();
    let loaded = Hnsw::load(&path).unwrap();
    assert_eq!(loaded.len(), graph.len());
    assert!(!loaded.contains(7));
    for q in clustered(30, 12, 20, 10) {
        assert_eq!(
            loaded.search(&q, 10, 32, None).unwrap(),
            graph.search(&q, 10, 32, None).unwrap()
        );
    }
    let mut more = loaded;
    more.add(&[(1, &[1.0; 12][..])]).unwrap();
    assert_eq!(more.search(&[2.0; 12], 1, 32, None).unwrap()[0].0, 1);
}

#[test]
fn a_damaged_file_is_a_storage_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.hnsw");
    let vectors = clustered(300, 4, 5, 11);
    build(Space::L2, &vectors, 1).save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let header = 8 + 9 * 8;
    let cases: Vec<Vec<u8>> = vec![
        b"not a graph".to_vec(),
        bytes[..bytes.len() / 2].to_vec(),
        {
            // Node count far past the file's end.
            let mut b = bytes.clone();
            b[8 + 6 * 8..8 + 7 * 8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        },
        {
            // A level-0 link naming a slot that does not exist.
            let mut b = bytes.clone();
            let links = header + 300 * 8 + 300 + 300 * 4 * 4;
            b[links..links + 4].copy_from_slice(&1u32.to_le_bytes());
            b[links + 4..links + 8].copy_from_slice(&100_000u32.to_le_bytes());
            b
        },
        {
            // Nodes, but no entry point: no search could reach them.
            let mut b = bytes.clone();
            b[8 + 7 * 8..8 + 8 * 8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        },
    ];
    for (i, damaged) in cases.into_iter().enumerate() {
        std::fs::write(&path, damaged).unwrap();
        let err = Hnsw::load(&path).unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "case {i}: {err}");
    }
}

/// The data of the speed measurements: `FERROSTORE_HNSW_DATA` names a folder of raw
/// little-endian `base.f32`, `queries.f32` and `gt.i32` (10 true neighbours per query),
/// `FERROSTORE_HNSW_DIM` their dimension (default 128). `None` without the variable.
pub(in crate::vectors) struct SpeedData {
    pub dim: usize,
    pub base: Vec<f32>,
    pub queries: Vec<f32>,
    pub gt: Vec<u32>,
}

pub(in crate::vectors) fn speed_data() -> Option<SpeedData> {
    let folder = std::env::var("FERROSTORE_HNSW_DATA").ok()?;
    let dim: usize = std::env::var("FERROSTORE_HNSW_DIM").map_or(128, |d| d.parse().unwrap());
    let words = |name: &str| -> Vec<u32> {
        std::fs::read(std::path::Path::new(&folder).join(name))
            .unwrap()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let floats = |name: &str| words(name).into_iter().map(f32::from_bits).collect();
    Some(SpeedData {
        dim,
        base: floats("base.f32"),
        queries: floats("queries.f32"),
        gt: words("gt.i32"),
    })
}

/// Build and query speed on vectors from files (`FERROSTORE_HNSW_DATA`: a folder with
/// `base.f32`, `queries.f32` and `gt.i32` top-10 rows, dimension `FERROSTORE_HNSW_DIM`;
/// float16 storage when `FERROSTORE_HNSW_F16` is set).
/// Run: `cargo test --release -p ferrostore-core hnsw_speed -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement on external data, not a check"]
fn hnsw_speed() {
    let Some(SpeedData {
        dim,
        base,
        queries,
        gt,
    }) = speed_data()
    else {
        return;
    };
    let items: Vec<(u64, &[f32])> = base
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let storage = if std::env::var("FERROSTORE_HNSW_F16").is_ok() {
        Storage::F16
    } else {
        Storage::F32
    };
    let params = HnswParams {
        storage,
        ..HnswParams::default()
    };
    let batch: usize =
        std::env::var("FERROSTORE_HNSW_BATCH").map_or(50_000, |b| b.parse().unwrap());
    let mut graph = Hnsw::new(dim, Space::Ip, params).unwrap();
    let start = std::time::Instant::now();
    for part in items.chunks(batch) {
        graph.add(part).unwrap();
    }
    println!(
        "build {} x {dim}: {:.2} s, {} B/vector",
        items.len(),
        start.elapsed().as_secs_f64(),
        graph.memory_bytes() / items.len()
    );
    // The pass `add` ran at its end, run again: it finds nothing to link, so this is the
    // cost of checking.
    let start = std::time::Instant::now();
    let linked = graph.connect();
    println!(
        "connect: {linked} linked, {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    for ef in [16, 32, 64, 128] {
        let start = std::time::Instant::now();
        let mut hits = 0;
        for (q, truth) in queries.chunks_exact(dim).zip(gt.chunks_exact(10)) {
            let found = graph.search(q, 10, ef, None).unwrap();
            hits += found
                .iter()
                .filter(|h| truth.contains(&(h.0 as u32)))
                .count();
        }
        let n = queries.len() / dim;
        println!(
            "ef {ef}: {:.0} q/s, recall@10 {:.3}",
            n as f64 / start.elapsed().as_secs_f64(),
            hits as f64 / (n * 10) as f64
        );
    }
}

#[test]
fn float16_graphs_search_as_well_in_half_the_memory() {
    let vectors = clustered(3000, 32, 30, 12);
    let queries = clustered(100, 32, 30, 13);
    for space in [Space::L2, Space::Cosine] {
        let wide = build_stored(space, Storage::F32, &vectors, 2);
        let half = build_stored(space, Storage::F16, &vectors, 2);
        let (r_wide, r_half) = (
            recall(&wide, &queries, 10, 128),
            recall(&half, &queries, 10, 128),
        );
        assert!(r_half >= 0.95, "{space:?}: float16 recall@10 {r_half}");
        assert!(
            r_half >= r_wide - 0.02,
            "{space:?}: float16 {r_half}, float32 {r_wide}"
        );
        assert_eq!(wide.memory_bytes() - half.memory_bytes(), 3000 * 32 * 2);
        let mut a = Vec::new();
        let mut b = Vec::new();
        assert!(wide.get(7, &mut a) && half.get(7, &mut b));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= x.abs() / 1024.0 + 1e-7, "{x} vs {y}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("half.hnsw");
        half.save(&path).unwrap();
        let loaded = Hnsw::load(&path).unwrap();
        assert_eq!(
            loaded.search(&queries[0], 10, 32, None).unwrap(),
            half.search(&queries[0], 10, 32, None).unwrap()
        );
    }
    let params = HnswParams {
        storage: Storage::F16,
        ..HnswParams::default()
    };
    let mut raw = Hnsw::new(2, Space::L2, params).unwrap();
    let err = raw.add(&[(1, &[1e6, 0.0][..])]).unwrap_err();
    assert!(err.to_string().contains("float16"), "{err}");
    assert!(raw.is_empty());
}

#[test]
fn float_to_half_rounds_to_nearest_even() {
    for (x, bits) in [
        (0.0f32, 0x0000u16),
        (-0.0, 0x8000),
        (1.0, 0x3c00),
        (-2.0, 0xc000),
        (65504.0, 0x7bff),
        (65520.0, 0x7c00),
        (1e9, 0x7c00),
        (f32::INFINITY, 0x7c00),
        (5.960_464_5e-8, 0x0001),
        (2.980_232_2e-8, 0x0000),
        (6.103_515_6e-5, 0x0400),
        (1.000_488_3, 0x3c00),
        (1.001_464_8, 0x3c02),
        (0.333_333_34, 0x3555),
    ] {
        assert_eq!(f32_to_f16_bits(x), bits, "{x}");
    }
    let mut rng = Rng(14);
    for _ in 0..10_000 {
        let x = rng.next() * 1000.0;
        let back = super::super::f16_bits_to_f32(f32_to_f16_bits(x));
        assert!((x - back).abs() <= x.abs() / 2048.0 + 1e-7, "{x} -> {back}");
    }
}

#[test]
fn every_kernel_agrees_with_plain_sums() {
    // Lengths around each kernel's block sizes (8, 16, 32, 64 lanes) and their tails.
    for (name, kernels) in Kernels::available() {
        for n in [1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 384, 385] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let b: Vec<f32> = (0..n)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 13.0)
                .collect();
            let half: Vec<u16> = b.iter().map(|&x| f32_to_f16_bits(x)).collect();
            let widened: Vec<f32> = half
                .iter()
                .map(|&h| crate::vectors::f16_bits_to_f32(h))
                .collect();
            let dot =
                |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| f64::from(p * q)).sum::<f64>();
            let l2 = |x: &[f32], y: &[f32]| {
                x.iter()
                    .zip(y)
                    .map(|(p, q)| f64::from((p - q) * (p - q)))
                    .sum::<f64>()
            };
            let close =
                |got: f32, want: f64| (f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1.0);
            assert!(
                close((kernels.dot)(&a, &b), dot(&a, &b)),
                "{name} dot, n = {n}"
            );
            assert!(
                close((kernels.l2)(&a, &b), l2(&a, &b)),
                "{name} l2, n = {n}"
            );
            let (d, l) = ((kernels.dot_half)(&a, &half), (kernels.l2_half)(&a, &half));
            assert!(close(d, dot(&a, &widened)), "{name} dot_half, n = {n}");
            assert!(close(l, l2(&a, &widened)), "{name} l2_half, n = {n}");
            let mut out = vec![0.0; n];
            (kernels.widen)(&half, &mut out);
            assert_eq!(out, widened, "{name} widen, n = {n}");
        }
        // Codes at their extremes (255 * -127 in every lane) and mixed; one to four blocks a
        // row, three rows.
        for width in [64, 128, 192, 256] {
            let q: Vec<u8> = (0..width).map(|i| (i * 37 % 256) as u8).collect();
            let mut rows: Vec<i8> = (0..2 * width).map(|i| (i * 53 % 255) as i8).collect();
            rows.extend(std::iter::repeat_n(-127i8, width));
            let mut want: Vec<f32> = rows
                .chunks(width)
                .map(|row| {
                    let sum: i32 = q
                        .iter()
                        .zip(row)
                        .map(|(&x, &y)| i32::from(x) * i32::from(y))
                        .sum();
                    sum as f32
                })
                .collect();
            let mut got = vec![0.0; 3];
            (kernels.dot_codes_rows)(&q, &rows, &mut got);
            assert_eq!(got, want, "{name} dot_codes_rows, width = {width}");
            let high = vec![255u8; width];
            (kernels.dot_codes_rows)(&high, &rows, &mut got);
            want[2] = (-255 * 127 * width as i32) as f32;
            assert_eq!(got[2], want[2], "{name} dot_codes_rows at the extremes");
        }
    }
}

#[test]
fn every_narrowing_kernel_rounds_as_the_plain_one() {
    // Halfway cases (ties to even), subnormals, the largest half and overflow, both signs.
    let mut values: Vec<f32> = vec![
        0.0, -0.0, 1.0, 65504.0, 65519.0, 65520.0, 1e9, 6.0e-8, 3.0e-8,
    ];
    values.extend((0..4000).map(|i| (i as f32 - 2000.0) * 0.000_976_562_5 * 1.000_244_1));
    values.extend((0..200).map(|i| f32::from_bits(0x3380_0000 + i * 0x0001_0001)));
    let negated: Vec<f32> = values.iter().map(|v| -v).collect();
    values.extend(negated);
    let want: Vec<u16> = values.iter().map(|&x| f32_to_f16_bits(x)).collect();
    for (name, kernels) in Kernels::available() {
        let mut got = vec![0; values.len()];
        (kernels.narrow)(&values, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g, w,
                "{name}: {} narrowed to {g:#06x}, expected {w:#06x}",
                values[i]
            );
        }
    }
}

#[test]
fn distances_in_bulk_match_one_at_a_time_in_order() {
    let vectors = clustered(500, 24, 10, 3);
    for storage in [Storage::F32, Storage::F16] {
        let mut graph = build_stored(Space::L2, storage, &vectors, 1);
        let q = &vectors[7][..];
        // Removed keys are skipped, as unknown ones are.
        for key in [0, 4, 5, 6, 200, 499] {
            graph.remove(key);
        }
        // Keys found by a forward search (the graph's keys ascend) and by lookup (a key
        // added again ascends no more).
        for again in [false, true] {
            if again {
                graph.add(&[(2, &vectors[9][..])]).unwrap();
            }
            assert_eq!(graph.keys_ascending, !again);
            // Fewer keys than the lookahead, and many more, in every order; unknown keys.
            for keys in [
                vec![3u64, 10_000, 5, 2],
                (0..600).rev().step_by(3).collect(),
                (0..600).step_by(2).collect(),
                (0..520).filter(|k| k % 7 != 3).collect::<Vec<_>>(),
            ] {
                let mut got = Vec::new();
                graph.for_each_distance(q, keys.iter().copied(), |k, d| got.push((k, d)));
                let want: Vec<(u64, f32)> = keys
                    .iter()
                    .filter_map(|&k| graph.distance_to(q, k).map(|d| (k, d)))
                    .collect();
                assert_eq!(got, want, "{storage:?}");
            }
        }
    }
}

#[test]
fn quantized_codes_round_to_the_nearest_step_of_the_largest_value() {
    let mut rng = Rng(77);
    for n in [1, 15, 16, 17, 384, 385] {
        let x: Vec<f32> = (0..n).map(|_| rng.next() * 3.0).collect();
        let mut codes = vec![99i8; code_width(n)];
        let scale = quantize(&x, &mut codes);
        let largest = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((scale - largest / 127.0).abs() <= f32::EPSILON * largest);
        for (v, c) in x.iter().zip(&codes) {
            assert!(
                (v - scale * f32::from(*c)).abs() <= scale * 0.5 + 1e-6,
                "{v} -> {c}"
            );
        }
        assert!(
            codes[n..].iter().all(|&c| c == 99),
            "padding left as it was"
        );
    }
    // All zeros; values so small that 127 / largest overflows; a NaN; infinity: zero
    // codes, scale 0.
    for x in [
        [0.0f32; 3],
        [1e-45, -1e-45, 0.0],
        [0.5, f32::NAN, -0.5],
        [0.5, f32::INFINITY, -0.5],
    ] {
        let mut codes = vec![5i8; 64];
        assert_eq!(quantize(&x, &mut codes), 0.0, "{x:?}");
        assert_eq!(&codes[..4], &[0, 0, 0, 5], "{x:?}");
    }
}

use serde_json::json;

use super::*;

/// A `where` filter text, no `where_document`.
fn where_text(text: &str) -> FilterTexts<'_> {
    FilterTexts {
        where_: Some(text),
        where_document: None,
    }
}

fn config(dim: usize, space: &str) -> CollectionConfig {
    CollectionConfig::new(dim, space, 16, 64, 64, "f32")
}

fn batch(ids: &[&str], vectors: Vec<f32>, meta: Option<Vec<serde_json::Value>>) -> WriteBatch {
    WriteBatch {
        ids: ids.iter().map(|s| (*s).to_string()).collect(),
        vectors: Some(vectors),
        documents: Some(ids.iter().map(|s| Some(format!("doc {s}"))).collect()),
        metadatas: meta.map(|m| m.into_iter().map(|v| Some(v.to_string())).collect()),
    }
}

/// Deterministic pseudo-random unit vectors.
fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        out.extend(row.into_iter().map(|v| v / norm));
    }
    out
}

fn brute(
    all: &[f32],
    dim: usize,
    q: &[f32],
    k: usize,
    allowed: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = all
        .chunks(dim)
        .enumerate()
        .filter(|(i, _)| allowed(*i))
        .map(|(i, v)| (Space::Cosine.distance(q, v), i))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

#[test]
fn add_query_filter_and_recall() {
    let dir = tempfile::tempdir().unwrap();
    let (n, dim) = (6000, 32);
    let all = vectors(n, dim, 7);
    let c = Collection::open(dir.path(), Some(config(dim, "cosine")), Some(1 << 30)).unwrap();
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let meta = (0..n)
        .map(|i| json!({"bucket": i % 100, "even": i % 2 == 0}))
        .collect();
    c.write(batch(&id_refs, all.clone(), Some(meta)), WriteMode::Add)
        .unwrap();
    assert_eq!(c.count().unwrap(), n);
    let queries = vectors(20, dim, 99);
    let results = c
        .query(&queries, 10, FilterTexts::default(), Include::default())
        .unwrap();
    let mut hits = 0;
    for (q, r) in queries.chunks(dim).zip(&results) {
        let truth = brute(&all, dim, q, 10, |_| true);
        hits += r
            .ids
            .iter()
            .filter(|id| truth.contains(&id.parse::<usize>().unwrap()))
            .count();
        assert!(r.distances.windows(2).all(|w| w[0] <= w[1]));
    }
    assert!(hits as f64 / 200.0 >= 0.9, "recall {}", hits as f64 / 200.0);
    // Filtered: 1% selectivity goes exact and is perfect.
    let w = json!({"bucket": {"$lt": 1}}).to_string();
    let r = c
        .query(&queries[..dim], 10, where_text(&w), Include::default())
        .unwrap();
    let truth = brute(&all, dim, &queries[..dim], 10, |i| i % 100 < 1);
    let got: Vec<usize> = r[0].ids.iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(got, truth);
}

#[test]
fn add_existing_update_upsert_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 4;
    {
        let c = Collection::open(dir.path(), Some(config(dim, "l2")), Some(1 << 26)).unwrap();
        c.write(
            batch(
                &["a", "b"],
                vec![0., 0., 0., 1., 1., 0., 0., 0.],
                Some(vec![json!({"x": 1}), json!({"x": 2})]),
            ),
            WriteMode::Add,
        )
        .unwrap();
        let err = c
            .write(batch(&["c", "a"], vec![0.; 8], None), WriteMode::Add)
            .unwrap_err();
        assert!(matches!(err, Error::AlreadyExists(m) if m.contains("\"a\"")));
        assert_eq!(c.count().unwrap(), 2);
        let err = c
            .write(batch(&["zz"], vec![0.; 4], None), WriteMode::Update)
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
        // Update merges metadata and keeps the vector when none is given.
        let upd = WriteBatch {
            ids: vec!["a".into()],
            vectors: None,
            documents: None,
            metadatas: Some(vec![Some(r#"{"y": "new"}"#.into())]),
        };
        c.write(upd, WriteMode::Update).unwrap();
        let got = c
            .get(Some(&["a".to_string()]), None, None, None, 0, true)
            .unwrap();
        assert_eq!(got.metadatas[0].as_deref(), Some(r#"{"x":1,"y":"new"}"#));
        assert_eq!(got.vectors.unwrap(), vec![0., 0., 0., 1.]);
        c.write(
            batch(&["b", "c"], vec![0., 0., 0., 2., 5., 5., 5., 5.], None),
            WriteMode::Upsert,
        )
        .unwrap();
        let r = c
            .query(
                &[0., 0., 0., 2.],
                2,
                FilterTexts::default(),
                Include::default(),
            )
            .unwrap();
        assert_eq!(r[0].ids, vec!["b", "a"]);
        assert_eq!(r[0].distances, vec![0.0, 1.0]);
        let w = Where::parse(&json!({"x": 1})).unwrap();
        assert_eq!(c.delete(None, Some(&w), None).unwrap(), 1);
        assert_eq!(c.count().unwrap(), 2);
        c.checkpoint().unwrap();
        c.write(batch(&["d"], vec![9., 9., 9., 9.], None), WriteMode::Add)
            .unwrap();
    }
    // Reopen: checkpoint plus catch-up of "d"; "a" stays deleted.
    let c = Collection::open(dir.path(), None, Some(1 << 26)).unwrap();
    assert_eq!(c.count().unwrap(), 3);
    let r = c
        .query(
            &[9., 9., 9., 9.],
            5,
            FilterTexts::default(),
            Include::default(),
        )
        .unwrap();
    assert_eq!(r[0].ids, vec!["d", "c", "b"]);
    drop(c);
    assert!(matches!(
        Collection::open(dir.path(), Some(config(5, "l2")), None),
        Err(Error::SchemaMismatch(_))
    ));
}

#[test]
fn bad_input_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collection::open(dir.path(), Some(config(2, "ip")), Some(1 << 26)).unwrap();
    assert!(matches!(
        c.write(batch(&["a"], vec![f32::NAN, 0.], None), WriteMode::Add),
        Err(Error::InvalidArgument(_))
    ));
    assert!(
        matches!(c.write(batch(&["a", "a"], vec![0.; 4], None), WriteMode::Add), Err(Error::InvalidArgument(m)) if m.contains("duplicate"))
    );
    assert!(matches!(
        c.write(batch(&["a"], vec![0.; 3], None), WriteMode::Add),
        Err(Error::InvalidArgument(_))
    ));
    let bad_meta = WriteBatch {
        metadatas: Some(vec![Some(r#"{"a": [1]}"#.into())]),
        ..batch(&["a"], vec![0.; 2], None)
    };
    assert!(matches!(
        c.write(bad_meta, WriteMode::Add),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(c.count().unwrap(), 0);
    assert!(c
        .query(&[1., 0.], 3, FilterTexts::default(), Include::default())
        .unwrap()[0]
        .ids
        .is_empty());
    assert!(matches!(
        c.query(&[1., 0.], 0, FilterTexts::default(), Include::default()),
        Err(Error::InvalidArgument(_))
    ));
}

/// Every graph layout and quantization returns the same exact float32 distances, and a
/// cosine graph stored before unit-vector graphs existed still answers correctly.
#[test]
fn quantized_and_legacy_graphs_return_exact_distances() {
    let (n, dim) = (5000, 16);
    // Vectors of assorted lengths, so cosine differs from a plain dot product.
    let all: Vec<f32> = vectors(n, dim, 3)
        .chunks(dim)
        .enumerate()
        .flat_map(|(i, v)| v.iter().map(move |x| x * (1.0 + (i % 7) as f32)))
        .collect();
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let queries: Vec<f32> = vectors(5, dim, 11).iter().map(|x| x * 3.0).collect();
    let mut layouts = Vec::new();
    for quantization in ["f32", "f16", "bf16", "i8"] {
        layouts.push(CollectionConfig::new(
            dim,
            "cosine",
            16,
            64,
            64,
            quantization,
        ));
    }
    let mut legacy = config(dim, "cosine");
    legacy.normalized_graph = false;
    layouts.push(legacy.clone());
    legacy.graph = USEARCH_GRAPH.to_string();
    layouts.push(legacy);
    for cfg in layouts {
        let dir = tempfile::tempdir().unwrap();
        let c = Collection::open(dir.path(), Some(cfg.clone()), Some(1 << 28)).unwrap();
        c.write(batch(&id_refs, all.clone(), None), WriteMode::Add)
            .unwrap();
        c.set_search_ef(200).unwrap();
        let results = c
            .query(&queries, 10, FilterTexts::default(), Include::default())
            .unwrap();
        // Recall is judged over all queries: a build is not deterministic (nodes are linked
        // in parallel), and about 1 int8 usearch build in 25 misses 2 of one query's 10.
        let mut common = 0;
        for (q, r) in queries.chunks(dim).zip(&results) {
            let truth = brute(&all, dim, q, 10, |_| true);
            let got: Vec<usize> = r.ids.iter().map(|s| s.parse().unwrap()).collect();
            common += got.iter().filter(|i| truth.contains(i)).count();
            for (id, d) in got.iter().zip(&r.distances) {
                let exact = Space::Cosine.distance(q, &all[id * dim..(id + 1) * dim]);
                assert!((d - exact).abs() < 1e-5, "{cfg:?}: {d} vs {exact}");
            }
            assert!(r.distances.windows(2).all(|w| w[0] <= w[1]));
        }
        assert!(common >= 46, "{cfg:?}: recall@10 {common} of 50");
        drop(c);
        // Reopening reads the stored configuration back.
        let c = Collection::open(dir.path(), None, Some(1 << 28)).unwrap();
        assert_eq!(c.config(), &cfg);
    }
}

/// A batch of queries is assembled on every core, each part in its own read transaction:
/// it answers as each query alone does, also while another thread writes.
#[test]
fn batched_queries_answer_as_single_ones_while_writes_land() {
    let (n, dim) = (4000, 16);
    let all = vectors(n, dim, 21);
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = CollectionConfig::new(dim, "cosine", 16, 64, 64, "f16");
    let c = Collection::open(dir.path(), Some(cfg), Some(1 << 28)).unwrap();
    let meta = (0..n).map(|i| json!({"i": i})).collect();
    c.write(batch(&id_refs, all.clone(), Some(meta)), WriteMode::Add)
        .unwrap();
    let everything = Include {
        documents: true,
        metadatas: true,
        vectors: true,
    };
    let queries = vectors(64, dim, 5);
    let together = c
        .query(&queries, 10, FilterTexts::default(), everything)
        .unwrap();
    assert_eq!(together.len(), 64);
    for (q, r) in queries.chunks(dim).zip(&together) {
        // 4,000 records are scored exactly: float16 ranking, float32 rescoring, the true 10.
        let truth: Vec<String> = brute(&all, dim, q, 10, |_| true)
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(r.ids, truth);
        let alone = c
            .query(q, 10, FilterTexts::default(), everything)
            .unwrap()
            .remove(0);
        assert_eq!(r.ids, alone.ids);
        assert_eq!(r.distances, alone.distances);
        assert_eq!(r.documents, alone.documents);
        assert_eq!(r.metadatas, alone.metadatas);
        assert_eq!(r.vectors, alone.vectors);
    }
    // Records written meanwhile are whole in every result: each one's document, metadata
    // and vector belong to its id.
    let more = vectors(2000, dim, 77);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for (b, chunk) in more.chunks(100 * dim).enumerate() {
                let ids: Vec<String> = (0..100).map(|i| (n + b * 100 + i).to_string()).collect();
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let meta = ids
                    .iter()
                    .map(|id| json!({"i": id.parse::<usize>().unwrap()}));
                c.write(
                    batch(&refs, chunk.to_vec(), Some(meta.collect())),
                    WriteMode::Add,
                )
                .unwrap();
            }
        });
        for _ in 0..20 {
            for r in c
                .query(&queries, 10, FilterTexts::default(), everything)
                .unwrap()
            {
                assert_eq!(r.ids.len(), 10);
                for (j, id) in r.ids.iter().enumerate() {
                    let i: usize = id.parse().unwrap();
                    assert_eq!(
                        r.documents[j].as_deref(),
                        Some(format!("doc {id}").as_str())
                    );
                    assert_eq!(
                        r.metadatas[j].as_deref(),
                        Some(format!("{{\"i\":{i}}}").as_str())
                    );
                    let source = if i < n {
                        all[i * dim..(i + 1) * dim].to_vec()
                    } else {
                        more[(i - n) * dim..(i - n + 1) * dim].to_vec()
                    };
                    assert_eq!(
                        &r.vectors.as_ref().unwrap()[j * dim..(j + 1) * dim],
                        &source[..]
                    );
                }
            }
        }
    });
}

/// A cached filter result is dropped when a write changes the collection, and filtered
/// queries on every path (exact, parallel exact, filtered graph walk) find the exact top-k.
#[test]
fn filtered_queries_follow_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (n, dim) = (20_000, 16);
    let all = vectors(n, dim, 21);
    let c = Collection::open(dir.path(), Some(config(dim, "cosine")), Some(1 << 30)).unwrap();
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let meta = (0..n).map(|i| json!({"bucket": i % 100})).collect();
    c.write(batch(&id_refs, all.clone(), Some(meta)), WriteMode::Add)
        .unwrap();
    c.set_search_ef(256).unwrap();
    let q = &vectors(1, dim, 5)[..];
    // ~1% (200 rows: exact), ~15% (3,000: exact across threads), 50% (graph walk).
    for (lt, min_common) in [(1, 10), (15, 10), (50, 9)] {
        let w = json!({"bucket": {"$lt": lt}}).to_string();
        for _ in 0..2 {
            let r = c.query(q, 10, where_text(&w), Include::default()).unwrap();
            let truth = brute(&all, dim, q, 10, |i| i % 100 < lt);
            let got: Vec<usize> = r[0].ids.iter().map(|s| s.parse().unwrap()).collect();
            let common = got.iter().filter(|i| truth.contains(i)).count();
            assert!(common >= min_common, "bucket < {lt}: {got:?} vs {truth:?}");
        }
    }
    let w = json!({"bucket": 7}).to_string();
    let before = c.query(q, 3, where_text(&w), Include::default()).unwrap();
    assert!(!before[0].ids.contains(&"new".to_string()));
    // Scored again, the cached filter's vectors are packed into one block: same answer.
    let again = c.query(q, 3, where_text(&w), Include::default()).unwrap();
    assert_eq!(again[0].ids, before[0].ids);
    assert_eq!(again[0].distances, before[0].distances);
    let cache = c.filters.lock().unwrap();
    assert!(cache
        .entries
        .iter()
        .any(|(_, s)| s.packed.get().is_some_and(Option::is_some)));
    drop(cache);
    // A record equal to the query, in bucket 7: the next filtered query must see it first.
    c.write(
        batch(&["new"], q.to_vec(), Some(vec![json!({"bucket": 7})])),
        WriteMode::Add,
    )
    .unwrap();
    let after = c.query(q, 3, where_text(&w), Include::default()).unwrap();
    assert_eq!(after[0].ids[0], "new");
    c.delete(Some(&["new".to_string()]), None, None).unwrap();
    let again = c.query(q, 3, where_text(&w), Include::default()).unwrap();
    assert_eq!(again[0].ids, before[0].ids);
}

#[test]
fn half_floats_widen_exactly() {
    let cases: [(u16, f32); 7] = [
        (0x0000, 0.0),
        (0x3c00, 1.0),
        (0xc000, -2.0),
        (0x7bff, 65504.0),
        (0x0001, 5.960_464_5e-8),
        (0x03ff, 6.097_555e-5),
        (0x3555, 0.333_251_95),
    ];
    let half: Vec<i16> = cases
        .iter()
        .cycle()
        .take(21)
        .map(|(h, _)| *h as i16)
        .collect();
    let mut out = vec![0f32; half.len()];
    f16_to_f32(&half, &mut out);
    for (i, o) in out.iter().enumerate() {
        let (h, want) = cases[i % cases.len()];
        assert_eq!(*o, want, "{h:#06x}");
        assert_eq!(f16_bits_to_f32(h), want, "{h:#06x}");
    }
    assert!(f16_bits_to_f32(0x7c00).is_infinite());
}

#[test]
fn exact_scoring_split_over_cores_matches_one_pass() {
    let (n, dim) = (6000, 8);
    // Every vector three times: equal distances, settled by the smaller sequence number.
    let unique = vectors(n / 3, dim, 5);
    let all: Vec<f32> = (0..3).flat_map(|_| unique.iter().copied()).collect();
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for quantization in ["f32", "f16"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CollectionConfig::new(dim, "cosine", 16, 64, 64, quantization);
        let c = Collection::open(dir.path(), Some(cfg), Some(1 << 28)).unwrap();
        c.write(batch(&id_refs, all.clone(), None), WriteMode::Add)
            .unwrap();
        let state = c.state.read().unwrap();
        let mut set = state.live.clone();
        for seq in state.live.iter().filter(|s| s % 7 == 0).collect::<Vec<_>>() {
            set.remove(seq);
        }
        assert!(set.len() >= PARALLEL_EXACT_ROWS);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for q in vectors(4, dim, 17).chunks(dim) {
            let q = c.config.graph_vector(q.to_vec());
            let split = pool
                .install(|| c.exact(&state, &q, 25, &set, None))
                .unwrap();
            // The same from the set's vectors packed into one block, split and in one part.
            let packed = state.graph.own().unwrap().pack(set.iter());
            assert_eq!(packed.len(), set.len());
            let from_packed = pool.install(|| c.exact(&state, &q, 25, &set, Some(&packed)));
            assert_eq!(from_packed.unwrap(), split);
            let mut few = Bitset::default();
            for seq in set.iter().take(300) {
                few.insert(seq);
            }
            let packed = state.graph.own().unwrap().pack(few.iter());
            assert_eq!(
                c.exact(&state, &q, 25, &few, Some(&packed)).unwrap(),
                c.exact(&state, &q, 25, &few, None).unwrap()
            );
            let mut one_pass = c.exact_top(&state, &q, 50, set.iter()).unwrap();
            one_pass.sort_unstable();
            let one_pass: Vec<(u64, f32)> = one_pass.into_iter().map(|h| (h.1, h.0)).collect();
            // The 25 nearest, and for float16 those after them that rounding could swap in.
            assert_eq!(split[..], one_pass[..split.len()]);
            let error = c.graph_distance_error().unwrap();
            let last = one_pass[24].1 + 2.0 * error;
            let within = one_pass.iter().filter(|h| h.1 <= last).count();
            assert_eq!(split.len(), if error == 0.0 { 25 } else { within });
            assert!(
                split.windows(2).any(|w| w[0].1 == w[1].1),
                "no tie was tested"
            );
        }
    }
}

/// Configurations stored before the graph field keep usearch; new ones choose by storage.
#[test]
fn the_graph_follows_the_configuration() {
    let stored = json!({
        "dim": 4, "space": "cosine", "m": 16, "ef_construction": 64, "ef_search": 64,
        "quantization": "f16", "normalized_graph": true
    });
    let old: CollectionConfig = serde_json::from_value(stored).unwrap();
    assert_eq!(old.graph, USEARCH_GRAPH);
    for (space, quantization, graph) in [
        ("cosine", "f16", OWN_GRAPH),
        ("cosine", "f32", OWN_GRAPH),
        ("l2", "f32", OWN_GRAPH),
        ("l2", "f16", USEARCH_GRAPH),
        ("ip", "bf16", USEARCH_GRAPH),
        ("cosine", "i8", USEARCH_GRAPH),
    ] {
        let cfg = CollectionConfig::new(4, space, 16, 64, 64, quantization);
        assert_eq!(cfg.graph, graph, "{space} {quantization}");
    }
    let mut bad = config(4, "l2");
    bad.graph = "faiss".into();
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Collection::open(dir.path(), Some(bad), None),
        Err(Error::InvalidArgument(m)) if m.contains("faiss")
    ));
}

/// Past the exact-search cutoff the graph answers: its checkpoint is reloaded and caught up
/// on open, on both graphs, and a damaged checkpoint is rebuilt from the records.
#[test]
fn graph_checkpoints_reload_catch_up_and_survive_damage() {
    let (n, dim) = (6000, 16);
    let all = vectors(n, dim, 41);
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for quantization in ["f16", "bf16"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CollectionConfig::new(dim, "cosine", 16, 64, 64, quantization);
        let suffix = Graph::suffix(&cfg);
        {
            let c = Collection::open(dir.path(), Some(cfg.clone()), Some(1 << 28)).unwrap();
            c.write(
                batch(&id_refs[..5000], all[..5000 * dim].to_vec(), None),
                WriteMode::Add,
            )
            .unwrap();
            c.checkpoint().unwrap();
            c.write(
                batch(&id_refs[5000..], all[5000 * dim..].to_vec(), None),
                WriteMode::Add,
            )
            .unwrap();
            c.delete(Some(&["17".to_string()]), None, None).unwrap();
        }
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("graph-"))
            .collect();
        assert_eq!(files, vec![format!("graph-5000{suffix}")], "{quantization}");
        for damage in [false, true] {
            if damage {
                std::fs::write(dir.path().join(&files[0]), b"garbage").unwrap();
            }
            let c = Collection::open(dir.path(), None, Some(1 << 28)).unwrap();
            assert_eq!(c.count().unwrap(), n - 1);
            c.set_search_ef(128).unwrap();
            for (row, id) in [(17usize, "17"), (5500, "5500"), (3, "3")] {
                let q = &all[row * dim..(row + 1) * dim];
                let r = c
                    .query(q, 3, FilterTexts::default(), Include::default())
                    .unwrap();
                if id == "17" {
                    assert!(
                        !r[0].ids.contains(&"17".to_string()),
                        "deleted stays deleted"
                    );
                } else {
                    assert_eq!(r[0].ids[0], id, "{quantization} damaged={damage}");
                    assert!(r[0].distances[0].abs() < 1e-5);
                }
            }
        }
    }
}

/// A write that triggers a checkpoint succeeds when the checkpoint cannot be saved: the
/// write has committed, and the graph is only a cache.
#[test]
fn a_failed_checkpoint_does_not_fail_the_write() {
    let (n, dim) = (50_001, 2);
    let all = vectors(n, dim, 47);
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = CollectionConfig::new(dim, "l2", 8, 16, 16, "f32");
    let suffix = Graph::suffix(&cfg);
    // A non-empty folder where the checkpoint would be renamed to: the save fails.
    for seq in n - 2..=n + 2 {
        let blocker = dir.path().join(format!("graph-{seq}{suffix}"));
        std::fs::create_dir_all(blocker.join("taken")).unwrap();
    }
    let c = Collection::open(dir.path(), Some(cfg), Some(1 << 28)).unwrap();
    c.write(batch(&id_refs, all.clone(), None), WriteMode::Add)
        .unwrap();
    // The graph is now more than max(50,000, live records) ahead of its (absent) checkpoint:
    // the delete's maintenance tries to save it, and cannot.
    assert_eq!(c.delete(Some(&["0".to_string()]), None, None).unwrap(), 1);
    assert!(c.checkpoint().is_err(), "the blocker is in the way");
    assert_eq!(c.count().unwrap(), n - 1);
    drop(c);
    let c = Collection::open(dir.path(), None, Some(1 << 28)).unwrap();
    assert_eq!(c.count().unwrap(), n - 1);
}

/// A deletion marked by any handle is seen by every open handle of the collection; a folder
/// removed by other means refuses writes, also when a new folder takes its path.
#[test]
fn deletion_is_seen_by_every_handle_and_writes_to_a_removed_folder_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let cfg = CollectionConfig::new(4, "l2", 16, 64, 64, "f32");
    let c = Collection::open(&path, Some(cfg.clone()), Some(1 << 24)).unwrap();
    assert!(!c.is_deleted());
    let one = |id: &str| batch(&[id], vec![1.0, 0.0, 0.0, 0.0], None);
    c.write(one("a"), WriteMode::Add).unwrap();
    mark_deleted(&path).unwrap();
    assert!(c.is_deleted());
    assert!(matches!(
        c.write(one("b"), WriteMode::Add),
        Err(Error::NotFound(_))
    ));
    drop(c);

    let other = dir.path().join("d");
    let c = Collection::open(&other, Some(cfg), Some(1 << 24)).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
    std::fs::create_dir(&other).unwrap();
    assert!(!c.is_deleted(), "not deleted through the API");
    assert!(matches!(
        c.write(one("a"), WriteMode::Add),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        c.delete(Some(&["a".to_string()]), None, None),
        Err(Error::NotFound(_))
    ));
}

/// `checkpoint_if_behind` saves only when replaying the missing records would cost more than
/// the save; a save keeps a newer checkpoint of another process and removes older files,
/// temporary ones included.
#[test]
fn checkpoint_if_behind_saves_when_replay_costs_more() {
    let (n, dim) = (6000, 8);
    let all = vectors(n, dim, 43);
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = CollectionConfig::new(dim, "cosine", 16, 64, 64, "f16");
    let suffix = Graph::suffix(&cfg);
    let graph_names = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("graph-"))
            .collect();
        names.sort();
        names
    };
    let c = Collection::open(dir.path(), Some(cfg), Some(1 << 28)).unwrap();
    c.write(
        batch(&id_refs[..5950], all[..5950 * dim].to_vec(), None),
        WriteMode::Add,
    )
    .unwrap();
    assert!(c.checkpoint_if_behind().unwrap(), "5950 records behind");
    assert_eq!(graph_names(), vec![format!("graph-5950{suffix}")]);
    assert!(!c.checkpoint_if_behind().unwrap(), "nothing behind");
    // 50 records behind 6000: replaying them costs less than saving 6000.
    c.write(
        batch(&id_refs[5950..], all[5950 * dim..].to_vec(), None),
        WriteMode::Add,
    )
    .unwrap();
    assert!(!c.checkpoint_if_behind().unwrap(), "50 of 6000 behind");
    assert_eq!(graph_names(), vec![format!("graph-5950{suffix}")]);
    // A newer checkpoint of another process stays; an older one and a stale temporary go.
    let newer = format!("graph-9999{suffix}");
    std::fs::write(dir.path().join(&newer), b"another process").unwrap();
    std::fs::write(
        dir.path().join(format!("graph-10{suffix}.77.tmp")),
        b"killed",
    )
    .unwrap();
    c.checkpoint().unwrap();
    assert_eq!(
        graph_names(),
        vec![format!("graph-6000{suffix}"), newer.clone()]
    );
    std::fs::remove_file(dir.path().join(&newer)).unwrap();
    drop(c);
    let c = Collection::open(dir.path(), None, Some(1 << 28)).unwrap();
    assert_eq!(c.count().unwrap(), n);
    let r = c
        .query(
            &all[5990 * dim..5991 * dim],
            1,
            FilterTexts::default(),
            Include::default(),
        )
        .unwrap();
    assert_eq!(r[0].ids, vec!["5990".to_string()]);
}

/// Collection queries against the bare graph search on the same graph, one query per call.
/// Reads the data of `hnsw_speed` (see `hnsw::tests::speed_data`); run with `--ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement; needs FERROSTORE_HNSW_DATA"]
fn collection_query_speed() {
    let Some(hnsw::tests::SpeedData {
        dim, base, queries, ..
    }) = hnsw::tests::speed_data()
    else {
        return;
    };
    let n = base.len() / dim;
    let dir = tempfile::tempdir().unwrap();
    let config = CollectionConfig::new(dim, "cosine", 16, 128, 32, "f16");
    let c = Collection::open(dir.path(), Some(config), Some(1 << 34)).unwrap();
    for start in (0..n).step_by(5000) {
        let end = (start + 5000).min(n);
        let ids: Vec<String> = (start..end).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut b = batch(&refs, base[start * dim..end * dim].to_vec(), None);
        b.documents = None;
        c.write(b, WriteMode::Add).unwrap();
    }
    let time = |label: &str, f: &dyn Fn(&[f32])| {
        let start = std::time::Instant::now();
        for q in queries.chunks_exact(dim) {
            f(q);
        }
        let per = start.elapsed().as_secs_f64() / (queries.len() / dim) as f64;
        println!("{label}: {:.1} us/query", per * 1e6);
    };
    let rounds: usize = std::env::var("FERROSTORE_QUERY_ROUNDS").map_or(3, |r| r.parse().unwrap());
    for _ in 0..rounds {
        time("collection.query", &|q| {
            c.query(q, 10, FilterTexts::default(), Include::default())
                .unwrap();
        });
        time("graph.search", &|q| {
            let state = c.state.read().unwrap();
            let mut unit = q.to_vec();
            normalize(&mut unit);
            state.graph.search(&unit, 10).unwrap();
        });
        let nq = queries.len() / dim;
        let start = std::time::Instant::now();
        c.query(&queries, 10, FilterTexts::default(), Include::default())
            .unwrap();
        println!(
            "batch collection.query: {:.1} us/query",
            start.elapsed().as_secs_f64() / nq as f64 * 1e6
        );
        let start = std::time::Instant::now();
        {
            use rayon::prelude::*;
            let state = c.state.read().unwrap();
            let _r: Vec<_> = queries
                .par_chunks(dim)
                .map(|q| {
                    let mut unit = q.to_vec();
                    normalize(&mut unit);
                    state.graph.search(&unit, 10).unwrap()
                })
                .collect();
        }
        println!(
            "batch graph.search: {:.1} us/query",
            start.elapsed().as_secs_f64() / nq as f64 * 1e6
        );
    }
}

#[test]
fn filtered_queries_choose_the_cheaper_plan() {
    // Small match sets are always scored exactly.
    assert!(exact_is_cheaper(EXACT_LIMIT, 10_000_000));
    // 50k MiniLM rows: 10% exactly, 50% by the walk.
    assert!(exact_is_cheaper(5_000, 50_000));
    assert!(!exact_is_cheaper(25_000, 50_000));
    // On a million rows, 10% is 100k distances: the walk wins.
    assert!(!exact_is_cheaper(100_000, 1_000_000));
}

#[test]
fn nearest_rows_are_the_smallest_with_ties_to_the_first_row() {
    // Few distinct values (many ties), and lengths below, around and far above `n`; also
    // distances ascending, where the sample's bound rules out too many and the selection
    // falls back to every row.
    let mut x = 7u64;
    for len in [0usize, 1, 10, 64, 95, 96, 97, 500, 5_000] {
        for n in [0usize, 1, 10, 64, 80] {
            let random: Vec<f32> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((x >> 40) % 50) as f32 / 7.0
                })
                .collect();
            let ascending: Vec<f32> = (0..len).map(|i| i as f32).collect();
            for distances in [random, ascending] {
                let first = 1_000;
                let mut got = nearest_rows(&distances, first, n);
                got.sort_unstable();
                let mut want: Vec<Hit> = distances
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| Hit(d, (first + i) as u64))
                    .collect();
                want.sort_unstable();
                want.truncate(n);
                assert_eq!(got, want, "len {len}, n {n}");
            }
        }
    }
}

#[test]
fn packed_int8_estimates_find_the_exact_nearest_in_every_space() {
    let dim = 40;
    let all = vectors(3_000, dim, 23);
    let ids: Vec<String> = (0..3_000).map(|i| format!("r{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for (space, quantization) in [("cosine", "f16"), ("l2", "f32"), ("ip", "f32")] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CollectionConfig::new(dim, space, 16, 64, 64, quantization);
        let c = Collection::open(dir.path(), Some(cfg), Some(1 << 28)).unwrap();
        // Scaled rows, so that l2 and ip see norms other than one.
        let scaled: Vec<f32> = all
            .chunks(dim)
            .enumerate()
            .flat_map(|(i, v)| v.iter().map(move |x| x * (1.0 + (i % 5) as f32)))
            .collect();
        c.write(batch(&id_refs, scaled, None), WriteMode::Add)
            .unwrap();
        let state = c.state.read().unwrap();
        let mut set = Bitset::default();
        for seq in state.live.iter().filter(|s| s % 3 != 0) {
            set.insert(seq);
        }
        let packed = state.graph.own().unwrap().pack(set.iter());
        assert_eq!(packed.len(), set.len());
        for q in vectors(10, dim, 31).chunks(dim) {
            let q = c.config.graph_vector(q.to_vec());
            for k in [1, 10, 40] {
                assert_eq!(
                    c.exact(&state, &q, k, &set, Some(&packed)).unwrap(),
                    c.exact(&state, &q, k, &set, None).unwrap(),
                    "{space}, k {k}"
                );
            }
        }
    }
}

/// Filter texts key the cache of matches: a text seen again is not parsed again, another text
/// of the same filter gets an entry of its own (same answer), and a malformed text is refused
/// on every query, never cached.
#[test]
fn filter_texts_key_the_cache_and_malformed_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (n, dim) = (500, 8);
    let c = Collection::open(dir.path(), Some(config(dim, "l2")), Some(1 << 30)).unwrap();
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let meta = (0..n).map(|i| json!({"bucket": i % 10})).collect();
    c.write(
        batch(&id_refs, vectors(n, dim, 3), Some(meta)),
        WriteMode::Add,
    )
    .unwrap();
    let q = &vectors(1, dim, 4)[..];
    for bad in [r#"{"bucket": "#, r#"{"bucket": {"$near": 1}}"#, "[]"] {
        for _ in 0..2 {
            let err = c.query(q, 3, where_text(bad), Include::default());
            assert!(
                matches!(err, Err(Error::InvalidArgument(_))),
                "{bad}: {err:?}"
            );
        }
    }
    assert!(c.filters.lock().unwrap().entries.is_empty());
    let compact = c
        .query(q, 3, where_text(r#"{"bucket":3}"#), Include::default())
        .unwrap();
    let spaced = c
        .query(q, 3, where_text(r#"{"bucket": 3}"#), Include::default())
        .unwrap();
    let again = c
        .query(q, 3, where_text(r#"{"bucket":3}"#), Include::default())
        .unwrap();
    assert_eq!(compact[0].ids, spaced[0].ids);
    assert_eq!(compact[0].ids, again[0].ids);
    assert!(compact[0]
        .ids
        .iter()
        .all(|id| id.parse::<usize>().unwrap() % 10 == 3));
    let documents = FilterTexts {
        where_: Some(r#"{"bucket":3}"#),
        where_document: Some(r#"{"$contains": "x"}"#),
    };
    assert!(c.query(q, 3, documents, Include::default()).unwrap()[0]
        .ids
        .is_empty());
    assert_eq!(c.filters.lock().unwrap().entries.len(), 3);
}

/// A repeated filter scored exactly answers from its subset rows (no record lookups): the
/// same ids and bit-identical distances as its first, unpacked answer, for every space and
/// storage, with documents and metadata still read when included. (A usearch graph, here
/// ip in float16, has no packed rows and so no subset: its answers must not change either.)
#[test]
fn a_repeated_exact_filter_answers_as_the_first_time() {
    let (n, dim) = (3_000, 24);
    let all = vectors(n, dim, 9);
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let queries = vectors(3, dim, 77);
    for (space, quantization) in [
        ("cosine", "f16"),
        ("cosine", "f32"),
        ("l2", "f32"),
        ("ip", "f16"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectionConfig::new(dim, space, 16, 64, 64, quantization);
        let c = Collection::open(dir.path(), Some(config), Some(1 << 30)).unwrap();
        let meta = (0..n).map(|i| json!({"bucket": i % 50})).collect();
        c.write(batch(&id_refs, all.clone(), Some(meta)), WriteMode::Add)
            .unwrap();
        let w = json!({"bucket": {"$lt": 2}}).to_string();
        let first = c
            .query(&queries, 5, where_text(&w), Include::default())
            .unwrap();
        for include in [
            Include::default(),
            Include::default(),
            Include {
                documents: true,
                metadatas: true,
                vectors: false,
            },
        ] {
            let again = c.query(&queries, 5, where_text(&w), include).unwrap();
            for (a, b) in first.iter().zip(&again) {
                assert_eq!(a.ids, b.ids, "{space} {quantization}");
                assert_eq!(a.distances, b.distances, "{space} {quantization}");
                if include.documents {
                    let docs: Vec<Option<String>> =
                        a.ids.iter().map(|id| Some(format!("doc {id}"))).collect();
                    assert_eq!(b.documents, docs);
                    assert_eq!(b.metadatas.len(), a.ids.len());
                }
            }
        }
        let cache = c.filters.lock().unwrap();
        let subset = cache.entries[0].1.subset.get().is_some_and(Option::is_some);
        assert_eq!(
            subset,
            c.config.graph == OWN_GRAPH,
            "{space} {quantization}"
        );
    }
}

/// A collection reopened with another search breadth searches with it: `hnsw:search_ef`
/// changes after creation, and a process opening the collection later must use the new one.
#[test]
fn reopening_applies_the_given_search_breadth() {
    let dir = tempfile::tempdir().unwrap();
    let created = CollectionConfig::new(4, "l2", 16, 64, 16, "f32");
    let c = Collection::open(dir.path(), Some(created.clone()), Some(1 << 24)).unwrap();
    c.write(
        batch(&["a"], vec![1.0, 0.0, 0.0, 0.0], None),
        WriteMode::Add,
    )
    .unwrap();
    c.checkpoint().unwrap();
    drop(c);
    let wider = CollectionConfig {
        ef_search: 96,
        ..created
    };
    let c = Collection::open(dir.path(), Some(wider), Some(1 << 24)).unwrap();
    assert_eq!(c.config().ef_search, 96);
    assert_eq!(c.state.read().unwrap().graph.ef(), 96);
    drop(c);
    let stored = Collection::open(dir.path(), None, Some(1 << 24)).unwrap();
    assert_eq!(
        stored.config().ef_search,
        16,
        "opening without a config keeps the stored one"
    );
}

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampSecondArray,
};
use proptest::prelude::*;

use super::*;

fn spec(ttl: Option<i64>, created: bool) -> JoinSpec {
    JoinSpec {
        entity_keys: vec!["id".into()],
        feature_keys: vec!["id".into()],
        entity_timestamp: "ts".into(),
        feature_timestamp: "ts".into(),
        created_timestamp: created.then(|| "created".into()),
        ttl_micros: ttl,
        columns: vec![("value".into(), "value".into())],
    }
}

fn entities(ids: &[i64], ts: &[i64]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("ts", Arc::new(TimestampMicrosecondArray::from(ts.to_vec()))),
    ])
    .unwrap()
}

fn features(rows: &[(i64, i64, i64, i64)]) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.0 as i32).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
        ),
        (
            "created",
            Arc::new(TimestampMicrosecondArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ),
        (
            "value",
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ),
    ])
    .unwrap()
}

/// The obviously correct nested loop.
fn reference(
    ids: &[i64],
    ts: &[i64],
    rows: &[(i64, i64, i64, i64)],
    ttl: Option<i64>,
) -> Vec<Option<i64>> {
    ids.iter()
        .zip(ts)
        .map(|(&id, &t)| {
            let mut best: Option<(i64, i64, usize)> = None;
            for (i, r) in rows.iter().enumerate() {
                let in_window = r.1 <= t && ttl.filter(|x| *x > 0).is_none_or(|x| r.1 >= t - x);
                if r.0 == id && in_window && best.is_none_or(|b| (r.1, r.2, i) > b) {
                    best = Some((r.1, r.2, i));
                }
            }
            best.map(|(_, _, i)| rows[i].3)
        })
        .collect()
}

fn values(batch: &RecordBatch) -> Vec<Option<i64>> {
    batch.column(0).as_primitive::<Int64Type>().iter().collect()
}

proptest! {
    #[test]
    fn matches_the_nested_loop(
        rows in prop::collection::vec((0i64..6, 0i64..20, 0i64..3, any::<i64>()), 0..60),
        probes in prop::collection::vec((0i64..7, 0i64..25), 0..40),
        ttl in prop::option::of(0i64..8),
        cuts in prop::collection::vec(0usize..60, 0..4),
    ) {
        let (ids, ts): (Vec<i64>, Vec<i64>) = probes.into_iter().unzip();
        let want = reference(&ids, &ts, &rows, ttl);
        let out = point_in_time_join(&entities(&ids, &ts), &[features(&rows)], &spec(ttl, true)).unwrap();
        prop_assert_eq!(values(&out), want.clone());
        // The same rows in several batches (some empty) give the same answer.
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(rows.len())).collect();
        cuts.sort_unstable();
        let mut batches = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([rows.len()]) {
            batches.push(features(&rows[start..cut]));
            start = cut;
        }
        let out = point_in_time_join(&entities(&ids, &ts), &batches, &spec(ttl, true)).unwrap();
        prop_assert_eq!(values(&out), want.clone());
        // Integer keys are looked up in a table over their range when dense, in a hash map
        // when sparse: keys spread far apart (and negative ones) give the same answer.
        for (spread, shift) in [(1i64 << 40, 0i64), (-3, -5), (1, i64::MIN + 10)] {
            let key = |id: i64| id.wrapping_mul(spread).wrapping_add(shift);
            let far: Vec<i64> = ids.iter().map(|&id| key(id)).collect();
            let mut rows_far = features(&rows);
            let column = Int64Array::from(rows.iter().map(|r| key(r.0)).collect::<Vec<_>>());
            let mut columns = rows_far.columns().to_vec();
            columns[0] = Arc::new(column);
            rows_far = RecordBatch::try_new(
                Arc::new(arrow_schema::Schema::new(
                    rows_far
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.as_ref().clone().with_data_type(
                            if f.name() == "id" { arrow_schema::DataType::Int64 } else { f.data_type().clone() }
                        ))
                        .collect::<Vec<_>>(),
                )),
                columns,
            ).unwrap();
            let out = point_in_time_join(&entities(&far, &ts), &[rows_far], &spec(ttl, true)).unwrap();
            prop_assert_eq!(values(&out), want.clone(), "spread {} shift {}", spread, shift);
        }
    }
}

/// Integer keys at the ends of the range, and feature keys below, inside and above the
/// entity keys' range, on the table path and the hash path.
#[test]
fn integer_keys_at_the_extremes() {
    for ids in [
        vec![0i64, 1, 2],
        vec![i64::MIN, i64::MAX, 0],
        vec![-2, -1, 3],
    ] {
        let ts = vec![10i64; ids.len()];
        let mut rows: Vec<(i64, i64, i64, i64)> = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            rows.push((id, 5, 0, i as i64 + 100));
            rows.push((id.wrapping_add(1), 5, 0, -1)); // a neighbouring key: no entity row
            rows.push((id.wrapping_sub(1), 6, 0, -2));
        }
        let key_column = Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let batch = features(&rows);
        let mut columns = batch.columns().to_vec();
        columns[0] = Arc::new(key_column);
        let schema = arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("id", arrow_schema::DataType::Int64, true),
            batch.schema().field(1).clone(),
            batch.schema().field(2).clone(),
            batch.schema().field(3).clone(),
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
        let out = point_in_time_join(&entities(&ids, &ts), &[batch], &spec(None, true)).unwrap();
        let want: Vec<Option<i64>> = (0..ids.len())
            .map(|i| {
                // Neighbours of other ids may be this id (e.g. 0 + 1 == 1): the reference
                // settles which row wins.
                reference(&ids[i..=i], &ts[i..=i], &rows, None)[0]
            })
            .collect();
        assert_eq!(values(&out), want, "{ids:?}");
    }
}

#[test]
fn window_is_inclusive_and_ties_go_to_latest_created() {
    let rows = [
        (1, 10, 0, 100),
        (1, 10, 5, 105),
        (1, 20, 0, 200),
        (2, 5, 0, 500),
    ];
    let out = point_in_time_join(
        &entities(&[1, 1, 1, 2, 3], &[9, 10, 25, 9, 30]),
        &[features(&rows)],
        &spec(Some(5), true),
    )
    .unwrap();
    assert_eq!(
        values(&out),
        vec![None, Some(105), Some(200), Some(500), None]
    );
    // ttl boundary: 20 >= 25 - 5 is inside, 26 - 5 = 21 > 20 is outside.
    let out = point_in_time_join(
        &entities(&[1, 1], &[25, 26]),
        &[features(&rows)],
        &spec(Some(5), true),
    )
    .unwrap();
    assert_eq!(values(&out), vec![Some(200), None]);
}

#[test]
fn string_and_composite_keys_and_timestamp_units() {
    let ents = RecordBatch::try_from_iter([
        (
            "a",
            Arc::new(StringArray::from(vec!["x", "x", "y"])) as ArrayRef,
        ),
        ("b", Arc::new(Int64Array::from(vec![1, 2, 1])) as ArrayRef),
        (
            "when",
            Arc::new(TimestampSecondArray::from(vec![100, 100, 100])) as ArrayRef,
        ),
    ])
    .unwrap();
    let feats = RecordBatch::try_from_iter([
        (
            "a",
            Arc::new(StringArray::from(vec!["x", "x", "y"])) as ArrayRef,
        ),
        ("b", Arc::new(Int32Array::from(vec![1, 2, 2])) as ArrayRef),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![
                50_000_000,
                150_000_000,
                1,
            ])) as ArrayRef,
        ),
        (
            "v",
            Arc::new(StringArray::from(vec!["one", "two", "three"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let spec = JoinSpec {
        entity_keys: vec!["a".into(), "b".into()],
        feature_keys: vec!["a".into(), "b".into()],
        entity_timestamp: "when".into(),
        feature_timestamp: "ts".into(),
        created_timestamp: None,
        ttl_micros: None,
        columns: vec![("v".into(), "out".into())],
    };
    let out = point_in_time_join(&ents, std::slice::from_ref(&feats), &spec).unwrap();
    let v: Vec<_> = out.column(0).as_string::<i32>().iter().collect();
    assert_eq!(v, vec![Some("one"), None, None]);
    let split = [feats.slice(0, 1), feats.slice(1, 0), feats.slice(1, 2)];
    let out = point_in_time_join(&ents, &split, &spec).unwrap();
    let v: Vec<_> = out.column(0).as_string::<i32>().iter().collect();
    assert_eq!(v, vec![Some("one"), None, None]);
    assert_eq!(out.schema().field(0).name(), "out");
}

#[test]
fn bad_input_is_named() {
    let rows = [(1, 10, 0, 100)];
    let ents = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(vec!["1"])) as ArrayRef),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![1])) as ArrayRef,
        ),
    ])
    .unwrap();
    let err = point_in_time_join(&ents, &[features(&rows)], &spec(None, false)).unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch(m) if m.contains("'id'") && m.contains("string")));
    let mut s = spec(None, false);
    s.entity_timestamp = "missing".into();
    let err = point_in_time_join(&entities(&[1], &[1]), &[features(&rows)], &s).unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch(m) if m.contains("'missing'")));
    let empty = features(&[]);
    let out = point_in_time_join(&entities(&[1], &[1]), &[empty], &spec(None, true)).unwrap();
    assert_eq!(values(&out), vec![None]);
}

#[test]
fn several_batches_with_strings_and_no_batch_at_all() {
    let rows = [(1, 10, 0, 100), (2, 5, 0, 500), (1, 20, 0, 200)];
    let batches = [features(&rows[..1]), features(&[]), features(&rows[1..])];
    let out = point_in_time_join(
        &entities(&[1, 2, 1, 3], &[15, 9, 25, 30]),
        &batches,
        &spec(None, true),
    )
    .unwrap();
    assert_eq!(values(&out), vec![Some(100), Some(500), Some(200), None]);
    let err = point_in_time_join(&entities(&[1], &[1]), &[], &spec(None, true)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
}

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampSecondArray,
};
use arrow_schema::{DataType, Field, Schema};

use super::*;

fn spec(ttl_micros: Option<i64>) -> ViewSpec {
    ViewSpec {
        name: "customer".into(),
        join_keys: vec![Column::new("customer_id", ValueType::Int64)],
        features: vec![
            Column::new("total", ValueType::Int64),
            Column::new("avg", ValueType::Float32),
            Column::new("name", ValueType::String),
        ],
        ttl_micros,
    }
}

fn batch(ids: &[i64], ts_secs: &[i64], totals: &[Option<i64>]) -> RecordBatch {
    let n = ids.len();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("customer_id", Arc::new(Int64Array::from(ids.to_vec()))),
        (
            "event_timestamp",
            Arc::new(TimestampSecondArray::from(ts_secs.to_vec())),
        ),
        ("total", Arc::new(Int64Array::from(totals.to_vec()))),
        ("avg", Arc::new(Float64Array::from(vec![1.5; n]))),
        ("name", Arc::new(StringArray::from(vec!["x"; n]))),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

fn keys(ids: &[i64]) -> RecordBatch {
    RecordBatch::try_from_iter([(
        "customer_id",
        Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
    )])
    .unwrap()
}

fn open() -> (tempfile::TempDir, OnlineStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = OnlineStore::open(dir.path().join("online"), Some(64 << 20)).unwrap();
    (dir, store)
}

fn request() -> Vec<ViewRequest> {
    vec![ViewRequest {
        view: "customer".into(),
        features: None,
    }]
}

#[test]
fn write_then_read_round_trips_with_statuses() {
    let (_dir, store) = open();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    let summary = store
        .write(
            "customer",
            &[batch(&[1, 2], &[10, 10], &[Some(5), None])],
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(
        summary,
        WriteSummary {
            rows: 2,
            written: 2,
            skipped: 0
        }
    );
    let out = store.read(&request(), &keys(&[2, 1, 3]), 0).unwrap();
    let totals = out
        .values
        .column_by_name("customer:total")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(totals.iter().collect::<Vec<_>>(), vec![None, Some(5), None]);
    let avg = out
        .values
        .column_by_name("customer:avg")
        .unwrap()
        .as_primitive::<Float32Type>();
    assert_eq!(avg.value(1), 1.5);
    let status = out
        .statuses
        .column_by_name("customer:total")
        .unwrap()
        .as_primitive::<arrow_array::types::UInt8Type>();
    assert_eq!(status.values().to_vec(), vec![2, 1, 3]);
    let ts = out
        .event_timestamps
        .column(0)
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        ts.iter().collect::<Vec<_>>(),
        vec![Some(10_000_000), Some(10_000_000), None]
    );
}

#[test]
fn newer_wins_in_store_and_within_batch() {
    let (_dir, store) = open();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    let opts = WriteOptions::default();
    store
        .write(
            "customer",
            &[batch(&[1, 1, 1], &[5, 20, 7], &[Some(1), Some(2), Some(3)])],
            &opts,
        )
        .unwrap();
    // Older than what is stored: skipped.
    let s = store
        .write("customer", &[batch(&[1], &[19], &[Some(9)])], &opts)
        .unwrap();
    assert_eq!((s.written, s.skipped), (0, 1));
    let row = store
        .read_one("customer", &[KeyValue::Int(1)], None, 0)
        .unwrap();
    assert_eq!(row.values[0], Value::Int64(2));
    // Equal timestamps: the later write wins.
    store
        .write("customer", &[batch(&[1], &[20], &[Some(4)])], &opts)
        .unwrap();
    let row = store
        .read_one("customer", &[KeyValue::Int(1)], Some(&["total"]), 0)
        .unwrap();
    assert_eq!(row.values, vec![Value::Int64(4)]);
    assert_eq!(store.count("customer").unwrap(), 1);
}

#[test]
fn ttl_expires_values_at_read_time() {
    let (_dir, store) = open();
    store
        .register_view(&spec(Some(10_000_000)), OnSchemaChange::Error)
        .unwrap();
    store
        .write(
            "customer",
            &[batch(&[1], &[100], &[Some(1)])],
            &WriteOptions::default(),
        )
        .unwrap();
    let fresh = store
        .read_one("customer", &[KeyValue::Int(1)], None, 110_000_000)
        .unwrap();
    assert_eq!(fresh.statuses[0], Status::Present);
    let old = store
        .read_one("customer", &[KeyValue::Int(1)], None, 110_000_001)
        .unwrap();
    assert_eq!(old.statuses, vec![Status::OutsideMaxAge; 3]);
    assert_eq!(old.values[0], Value::Null);
}

#[test]
fn bad_input_changes_nothing() {
    let (_dir, store) = open();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    let opts = WriteOptions::default();
    assert!(matches!(
        store.write("nope", &[batch(&[1], &[1], &[Some(1)])], &opts),
        Err(Error::NotFound(_))
    ));
    // Missing key column.
    let b = batch(&[1], &[1], &[Some(1)])
        .project(&[1, 2, 3, 4])
        .unwrap();
    assert!(
        matches!(store.write("customer", &[b], &opts), Err(Error::SchemaMismatch(m)) if m.contains("customer_id"))
    );
    // A good batch and a bad one in the same call: nothing is written.
    let mut bad = batch(&[2], &[1], &[Some(1)]);
    let cols: Vec<ArrayRef> = vec![
        bad.column(0).clone(),
        bad.column(1).clone(),
        Arc::new(StringArray::from(vec!["not a number"])),
        bad.column(3).clone(),
        bad.column(4).clone(),
    ];
    let fields: Vec<Field> = bad
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if i == 2 {
                Field::new("total", DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    bad = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let err = store
        .write("customer", &[batch(&[1], &[1], &[Some(1)]), bad], &opts)
        .unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch(m) if m.contains("'total'")));
    assert_eq!(store.count("customer").unwrap(), 0);
    // Null keys.
    let null_keys = RecordBatch::try_from_iter([(
        "customer_id",
        Arc::new(Int64Array::from(vec![None, Some(1)])) as ArrayRef,
    )])
    .unwrap();
    assert!(
        matches!(store.read(&request(), &null_keys, 0), Err(Error::SchemaMismatch(m)) if m.contains("null"))
    );
    assert!(matches!(
        store.read(&[ViewRequest { view: "customer".into(), features: Some(vec!["zz".into()]) }], &keys(&[1]), 0),
        Err(Error::NotFound(m)) if m.contains("'zz'")
    ));
}

#[test]
fn int_and_string_keys_never_collide_and_int32_keys_cast() {
    let (_dir, store) = open();
    let mut s = spec(None);
    s.name = "by_string".into();
    s.join_keys = vec![Column::new("customer_id", ValueType::String)];
    store.register_view(&s, OnSchemaChange::Error).unwrap();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    store
        .write(
            "customer",
            &[batch(&[1001], &[1], &[Some(1)])],
            &WriteOptions::default(),
        )
        .unwrap();
    let row = store
        .read_one("by_string", &[KeyValue::String("1001".into())], None, 0)
        .unwrap();
    assert_eq!(row.statuses[0], Status::NotFound);
    let k32 = RecordBatch::try_from_iter([(
        "customer_id",
        Arc::new(Int32Array::from(vec![1001])) as ArrayRef,
    )])
    .unwrap();
    let out = store.read(&request(), &k32, 0).unwrap();
    assert_eq!(out.values.column(0).as_primitive::<Int64Type>().value(0), 1);
}

#[test]
fn schema_change_is_explicit() {
    let (_dir, store) = open();
    let v1 = store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    store
        .write(
            "customer",
            &[batch(&[1], &[1], &[Some(1)])],
            &WriteOptions::default(),
        )
        .unwrap();
    // Same layout, new ttl: same version.
    let same = store
        .register_view(&spec(Some(5)), OnSchemaChange::Error)
        .unwrap();
    assert_eq!((same.version, same.view_id), (v1.version, v1.view_id));
    let mut changed = spec(None);
    changed.features.push(Column::new("flag", ValueType::Bool));
    assert!(matches!(
        store.register_view(&changed, OnSchemaChange::Error),
        Err(Error::SchemaMismatch(_))
    ));
    assert_eq!(store.count("customer").unwrap(), 1);
    let v2 = store
        .register_view(&changed, OnSchemaChange::NewVersion)
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_ne!(v2.view_id, v1.view_id);
    assert_eq!(store.count("customer").unwrap(), 0);
    let b = batch(&[1], &[1], &[Some(1)]);
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(BooleanArray::from(vec![true])));
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("flag", DataType::Boolean, true));
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    store
        .write("customer", &[b], &WriteOptions::default())
        .unwrap();
    let row = store
        .read_one("customer", &[KeyValue::Int(1)], Some(&["flag"]), 0)
        .unwrap();
    assert_eq!(row.values, vec![Value::Bool(true)]);
}

#[test]
fn every_value_type_round_trips() {
    let (_dir, store) = open();
    let types = ValueType::ALL;
    let s = ViewSpec {
        name: "all".into(),
        join_keys: vec![
            Column::new("a", ValueType::String),
            Column::new("b", ValueType::Int32),
        ],
        features: types
            .iter()
            .map(|t| Column::new(format!("f_{t}"), *t))
            .collect(),
        ttl_micros: None,
    };
    store.register_view(&s, OnSchemaChange::Error).unwrap();
    let mut columns: Vec<(String, ArrayRef)> = vec![
        ("a".into(), Arc::new(StringArray::from(vec!["k", "k"]))),
        ("b".into(), Arc::new(Int32Array::from(vec![1, 2]))),
        (
            "event_timestamp".into(),
            Arc::new(TimestampSecondArray::from(vec![1, 1])),
        ),
    ];
    for t in types {
        let json = match t {
            ValueType::Int32 | ValueType::Int64 => "[7, null]",
            ValueType::Float32 | ValueType::Float64 => "[0.5, null]",
            ValueType::Bool => "[true, null]",
            ValueType::String => "[\"héllo\", null]",
            ValueType::Bytes => "[\"aGk=\", null]",
            ValueType::Timestamp => "[1700000000000000, null]",
            ValueType::ListFloat32 | ValueType::ListFloat64 => "[[1.5, 2.5], null]",
            ValueType::ListInt64 => "[[1, 2, 3], []]",
            ValueType::ListString => "[[\"a\", \"bc\"], null]",
        };
        let _ = json;
        let array: ArrayRef = match t {
            ValueType::Int32 => Arc::new(Int32Array::from(vec![Some(7), None])),
            ValueType::Int64 => Arc::new(Int64Array::from(vec![Some(7), None])),
            ValueType::Float32 => Arc::new(Float32Array::from(vec![Some(0.5), None])),
            ValueType::Float64 => Arc::new(Float64Array::from(vec![Some(0.5), None])),
            ValueType::Bool => Arc::new(BooleanArray::from(vec![Some(true), None])),
            ValueType::String => Arc::new(StringArray::from(vec![Some("héllo"), None])),
            ValueType::Bytes => {
                Arc::new(arrow_array::BinaryArray::from(vec![Some(&b"hi"[..]), None]))
            }
            ValueType::Timestamp => {
                Arc::new(TimestampSecondArray::from(vec![Some(1_700_000_000), None]))
            }
            ValueType::ListFloat32 => Arc::new(arrow_array::ListArray::from_iter_primitive::<
                Float32Type,
                _,
                _,
            >(vec![
                Some(vec![Some(1.5), Some(2.5)]),
                None,
            ])),
            ValueType::ListFloat64 => Arc::new(arrow_array::ListArray::from_iter_primitive::<
                arrow_array::types::Float64Type,
                _,
                _,
            >(vec![
                Some(vec![Some(1.5), Some(2.5)]),
                None,
            ])),
            ValueType::ListInt64 => {
                Arc::new(
                    arrow_array::ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
                        Some(vec![Some(1), Some(2), Some(3)]),
                        Some(vec![]),
                    ]),
                )
            }
            ValueType::ListString => {
                let mut b = arrow_array::builder::ListBuilder::new(
                    arrow_array::builder::StringBuilder::new(),
                );
                b.values().append_value("a");
                b.values().append_value("bc");
                b.append(true);
                b.append_null();
                Arc::new(b.finish())
            }
        };
        columns.push((format!("f_{t}"), array));
    }
    let b = RecordBatch::try_from_iter(columns).unwrap();
    store.write("all", &[b], &WriteOptions::default()).unwrap();
    let key = |b| [KeyValue::String("k".into()), KeyValue::Int(b)];
    let first = store.read_one("all", &key(1), None, 0).unwrap();
    assert_eq!(
        first.values,
        vec![
            Value::Int32(7),
            Value::Int64(7),
            Value::Float32(0.5),
            Value::Float64(0.5),
            Value::Bool(true),
            Value::String("héllo".into()),
            Value::Bytes(b"hi".to_vec()),
            Value::Timestamp(1_700_000_000_000_000),
            Value::ListFloat32(vec![1.5, 2.5]),
            Value::ListFloat64(vec![1.5, 2.5]),
            Value::ListInt64(vec![1, 2, 3]),
            Value::ListString(vec!["a".into(), "bc".into()]),
        ]
    );
    let second = store.read_one("all", &key(2), None, 0).unwrap();
    assert_eq!(second.values[10], Value::ListInt64(vec![]));
    assert_eq!(second.statuses[0], Status::NullValue);
    // The Arrow path decodes the same values.
    let entities = RecordBatch::try_from_iter([
        ("a", Arc::new(StringArray::from(vec!["k", "k"])) as ArrayRef),
        ("b", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
    ])
    .unwrap();
    let out = store
        .read(
            &[ViewRequest {
                view: "all".into(),
                features: None,
            }],
            &entities,
            0,
        )
        .unwrap();
    assert_eq!(out.values.num_columns(), 12);
    assert_eq!(
        out.values
            .column(11)
            .as_list::<i32>()
            .value(0)
            .as_string::<i32>()
            .value(1),
        "bc"
    );
}

#[test]
fn full_map_aborts_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = OnlineStore::open(dir.path(), Some(1 << 20)).unwrap();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    let ids: Vec<i64> = (0..100_000).collect();
    let ts = vec![1; ids.len()];
    let totals: Vec<Option<i64>> = ids.iter().map(|&i| Some(i)).collect();
    let err = store
        .write(
            "customer",
            &[batch(&ids, &ts, &totals)],
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::StorageFull(m) if m.contains("map size")));
    assert_eq!(store.count("customer").unwrap(), 0);
    store
        .write(
            "customer",
            &[batch(&[1], &[1], &[Some(1)])],
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(store.count("customer").unwrap(), 1);
}

#[test]
fn path_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    assert!(
        matches!(OnlineStore::open(&file, None), Err(Error::Storage(m)) if m.contains("is a file"))
    );
    assert!(matches!(
        OnlineStore::open(dir.path(), Some(1000)),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn same_path_shares_one_environment_and_delete_works() {
    let (dir, store) = open();
    let again = OnlineStore::open(dir.path().join("online"), None).unwrap();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    again
        .write(
            "customer",
            &[batch(&[1, 2], &[1, 1], &[Some(1), Some(2)])],
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(store.clear_view("customer").unwrap(), 2);
    assert_eq!(store.count("customer").unwrap(), 0);
    store.delete_view("customer").unwrap();
    assert!(matches!(store.view("customer"), Err(Error::NotFound(_))));
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    store.drop_all().unwrap();
    assert!(store.views().unwrap().is_empty());
}

#[test]
fn read_keys_reads_many_entities_of_several_views_in_input_order() {
    let (_dir, store) = open();
    store
        .register_view(&spec(Some(10_000_000)), OnSchemaChange::Error)
        .unwrap();
    let mut other = spec(None);
    other.name = "other".into();
    store.register_view(&other, OnSchemaChange::Error).unwrap();
    let opts = WriteOptions::default();
    store
        .write(
            "customer",
            &[batch(
                &[3, 1, 2],
                &[100, 100, 50],
                &[Some(30), Some(10), None],
            )],
            &opts,
        )
        .unwrap();
    store
        .write("other", &[batch(&[2], &[1], &[Some(7)])], &opts)
        .unwrap();
    let keys = [2, 9, 1, 3, 1].map(KeyValue::Int);
    let requests = [
        KeysRequest {
            view: "customer",
            features: Some(&["name", "total"]),
            keys: &keys,
        },
        KeysRequest {
            view: "other",
            features: None,
            keys: &keys[..2],
        },
    ];
    // At t = 105 s, entity 2 (written at 50 s) is past the 10 s ttl.
    let reads = store.read_keys(&requests, 105_000_000).unwrap();
    let customer = &reads[0];
    assert_eq!(customer.features, vec![2, 0]);
    assert_eq!(
        customer.event_ts,
        vec![
            Some(50_000_000),
            None,
            Some(100_000_000),
            Some(100_000_000),
            Some(100_000_000)
        ]
    );
    let s = "x".to_owned();
    assert_eq!(
        customer.values,
        vec![
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::String(s.clone()),
            Value::Int64(10),
            Value::String(s.clone()),
            Value::Int64(30),
            Value::String(s),
            Value::Int64(10),
        ]
    );
    assert_eq!(
        &customer.statuses[..4],
        &[
            Status::OutsideMaxAge,
            Status::OutsideMaxAge,
            Status::NotFound,
            Status::NotFound
        ]
    );
    let other = &reads[1];
    assert_eq!(other.values[0], Value::Int64(7));
    assert_eq!(other.statuses[3..], [Status::NotFound; 3]);
    // A key of the wrong type or arity, an unknown feature: errors, nothing read.
    let wrong = [KeyValue::String("1".into())];
    let bad = KeysRequest {
        view: "customer",
        features: None,
        keys: &wrong,
    };
    assert!(matches!(
        store.read_keys(&[bad], 0),
        Err(Error::SchemaMismatch(_))
    ));
    let unknown = KeysRequest {
        view: "customer",
        features: Some(&["nope"]),
        keys: &keys,
    };
    assert!(matches!(
        store.read_keys(&[unknown], 0),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.read_one("customer", &keys[..2], None, 0),
        Err(Error::SchemaMismatch(_))
    ));
}

#[test]
fn read_keys_of_many_entities_match_one_by_one_reads() {
    let (_dir, store) = open();
    store
        .register_view(&spec(Some(50_000_000)), OnSchemaChange::Error)
        .unwrap();
    let ids: Vec<i64> = (0..300).collect();
    let ts: Vec<i64> = ids.iter().map(|i| 10 + i % 100).collect();
    let totals: Vec<Option<i64>> = ids.iter().map(|&i| (i % 7 != 0).then_some(i)).collect();
    store
        .write(
            "customer",
            &[batch(&ids, &ts, &totals)],
            &WriteOptions::default(),
        )
        .unwrap();
    // Many keys in no order, with duplicates and unknown ids; at
    // t = 100 s the rows written before 50 s are past the ttl.
    let keys: Vec<KeyValue> = (0..500).map(|i| KeyValue::Int((i * 7919) % 420)).collect();
    let request = KeysRequest {
        view: "customer",
        features: Some(&["total", "name"]),
        keys: &keys,
    };
    let read = store.read_keys(&[request], 100_000_000).unwrap().remove(0);
    assert_eq!(read.event_ts.len(), keys.len());
    for (row, key) in keys.iter().enumerate() {
        let one = store
            .read_one(
                "customer",
                std::slice::from_ref(key),
                Some(&["total", "name"]),
                100_000_000,
            )
            .unwrap();
        assert_eq!(read.values[row * 2..row * 2 + 2], one.values[..]);
        assert_eq!(read.statuses[row * 2..row * 2 + 2], one.statuses[..]);
        assert_eq!(read.event_ts[row], one.event_ts);
    }
    assert!(read.statuses.contains(&Status::OutsideMaxAge));
    assert!(read.statuses.contains(&Status::NotFound));
    assert!(read.statuses.contains(&Status::NullValue));
}

/// One row of a generated write: (id, event second, created second, total, name length).
type GenRow = (i64, i64, i64, i64, usize);

fn rows_batch(rows: &[GenRow]) -> RecordBatch {
    let n = rows.len();
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "customer_id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ),
        (
            "event_timestamp",
            Arc::new(TimestampSecondArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
        ),
        (
            "created",
            Arc::new(TimestampSecondArray::from_iter_values(
                rows.iter().map(|r| r.2),
            )),
        ),
        (
            "total",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ),
        ("avg", Arc::new(Float64Array::from(vec![0.5; n]))),
        (
            // Names of varying length: a replaced row may change size.
            "name",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| "n".repeat(r.4)),
            )),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Chunks written in one transaction, and each chunk in a transaction of its own, leave
    /// the store a row-by-row newer-wins model describes, whichever of append, cursor
    /// merge or per-key search each chunk takes (the preloaded store and the chunk sizes
    /// vary to reach all three).
    #[test]
    fn chunked_writes_match_a_newer_wins_model(
        preload in 0usize..400,
        chunks in proptest::collection::vec(
            proptest::collection::vec(
                (0i64..600, 0i64..8, 0i64..3, 0i64..1000, 0usize..40),
                0..60,
            ),
            1..6,
        ),
    ) {
        let opts = WriteOptions {
            timestamp_column: "event_timestamp".into(),
            created_column: Some("created".into()),
        };
        // Even ids below 2 * preload, stored first at event second 4.
        let preloaded: Vec<GenRow> =
            (0..preload as i64).map(|i| (i * 2, 4, 1, -i, 3)).collect();
        let mut model: std::collections::HashMap<i64, GenRow> = HashMap::new();
        for row in preloaded.iter().chain(chunks.iter().flatten()) {
            let replace = model.get(&row.0).is_none_or(|old| (row.1, row.2) >= (old.1, old.2));
            if replace {
                model.insert(row.0, *row);
            }
        }
        let (_dir_one, one) = open();
        let (_dir_each, each) = open();
        for store in [&one, &each] {
            store.register_view(&spec(None), OnSchemaChange::Error).unwrap();
            store.write("customer", &[rows_batch(&preloaded)], &opts).unwrap();
        }
        // `each` is read with a replica the chunks make stale, `one` with a current one.
        proptest::prop_assert!(each.preload("customer").unwrap());
        let batches: Vec<Vec<RecordBatch>> =
            chunks.iter().map(|c| vec![rows_batch(c)]).collect();
        let total_rows: usize = chunks.iter().map(Vec::len).sum();
        let summary = one
            .write_chunks("customer", batches.clone().into_iter().map(Ok), &opts)
            .unwrap();
        proptest::prop_assert_eq!(summary.rows, total_rows);
        for chunk in &batches {
            each.write("customer", chunk, &opts).unwrap();
        }
        proptest::prop_assert!(one.preload("customer").unwrap());
        let ids: Vec<KeyValue> = (0..600).map(KeyValue::Int).collect();
        let request = [KeysRequest { view: "customer", features: Some(&["total", "name"]), keys: &ids }];
        for store in [&one, &each] {
            proptest::prop_assert_eq!(store.count("customer").unwrap(), model.len() as u64);
            let read = store.read_keys(&request, 0).unwrap().remove(0);
            for id in 0..600usize {
                let got = &read.values[id * 2..id * 2 + 2];
                match model.get(&(id as i64)) {
                    Some(row) => {
                        proptest::prop_assert_eq!(read.event_ts[id], Some(row.1 * 1_000_000));
                        proptest::prop_assert_eq!(
                            got,
                            &[Value::Int64(row.3), Value::String("n".repeat(row.4))][..]
                        );
                    }
                    None => proptest::prop_assert_eq!(read.event_ts[id], None),
                }
            }
        }
    }
}

#[test]
fn a_failing_chunk_writes_nothing_of_the_stream() {
    let (_dir, store) = open();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    let opts = WriteOptions::default();
    let chunks = vec![
        Ok(vec![batch(&[1, 2], &[5, 5], &[Some(1), Some(2)])]),
        Err(Error::InvalidArgument("the source failed".into())),
        Ok(vec![batch(&[3], &[5], &[Some(3)])]),
    ];
    let failed = store.write_chunks("customer", chunks, &opts).unwrap_err();
    assert!(matches!(failed, Error::InvalidArgument(_)), "{failed:?}");
    assert_eq!(store.count("customer").unwrap(), 0);
    // A chunk the view refuses (no event timestamp) also aborts the earlier ones.
    let bad = keys(&[4]);
    let chunks = vec![Ok(vec![batch(&[1], &[5], &[Some(1)])]), Ok(vec![bad])];
    assert!(store.write_chunks("customer", chunks, &opts).is_err());
    assert_eq!(store.count("customer").unwrap(), 0);
}

/// Reads of ids `0..n` with every feature, through `read_keys` and through `read`.
fn read_both_ways(store: &OnlineStore, n: i64) -> (RowsRead, ReadResult) {
    let ids: Vec<KeyValue> = (0..n).map(KeyValue::Int).collect();
    let by_keys = store
        .read_keys(
            &[KeysRequest {
                view: "customer",
                features: None,
                keys: &ids,
            }],
            0,
        )
        .unwrap()
        .remove(0);
    let ids: Vec<i64> = (0..n).collect();
    let by_batch = store.read(&request(), &keys(&ids), 0).unwrap();
    (by_keys, by_batch)
}

fn assert_same_reads(a: &(RowsRead, ReadResult), b: &(RowsRead, ReadResult)) {
    assert_eq!(a.0.values, b.0.values);
    assert_eq!(a.0.statuses, b.0.statuses);
    assert_eq!(a.0.event_ts, b.0.event_ts);
    assert_eq!(a.1.values, b.1.values);
    assert_eq!(a.1.statuses, b.1.statuses);
    assert_eq!(a.1.event_timestamps, b.1.event_timestamps);
}

#[test]
fn a_view_in_memory_reads_as_lmdb_does_and_writes_make_it_stale() {
    let (_dir, store) = open();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    let ids: Vec<i64> = (0..300).collect();
    let totals: Vec<Option<i64>> = ids.iter().map(|&i| (i % 7 != 0).then_some(i)).collect();
    store
        .write(
            "customer",
            &[batch(&ids, &[10; 300], &totals)],
            &WriteOptions::default(),
        )
        .unwrap();
    store.set_cache_bytes(0).unwrap();
    let from_lmdb = read_both_ways(&store, 400);
    store.set_cache_bytes(DEFAULT_CACHE_BYTES).unwrap();
    assert!(store.preload("customer").unwrap());
    assert!(store.cache_bytes_used().unwrap() > 0);
    assert_same_reads(&read_both_ways(&store, 400), &from_lmdb);

    // A newer row for id 5 and a new id 350: the replica is stale at once.
    store
        .write(
            "customer",
            &[batch(&[5, 350], &[11, 11], &[Some(-5), Some(-350)])],
            &WriteOptions::default(),
        )
        .unwrap();
    let (after, _) = read_both_ways(&store, 400);
    let width = 3;
    assert_eq!(after.values[5 * width], Value::Int64(-5));
    assert_eq!(after.values[350 * width], Value::Int64(-350));
    assert!(store.preload("customer").unwrap());
    let reloaded = read_both_ways(&store, 400);
    assert_eq!(reloaded.0.values[5 * width], Value::Int64(-5));
    assert_eq!(reloaded.0.values[350 * width], Value::Int64(-350));

    // Older rows change nothing, and leave the replica current.
    store
        .write(
            "customer",
            &[batch(&[5], &[1], &[Some(0)])],
            &WriteOptions::default(),
        )
        .unwrap();
    assert_same_reads(&read_both_ways(&store, 400), &reloaded);

    store.clear_view("customer").unwrap();
    let (cleared, _) = read_both_ways(&store, 400);
    assert!(cleared.statuses.iter().all(|s| *s == Status::NotFound));
}

#[test]
fn a_view_over_the_budget_is_read_from_lmdb() {
    let (_dir, store) = open();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    let ids: Vec<i64> = (0..300).collect();
    store
        .write(
            "customer",
            &[batch(&ids, &[10; 300], &[Some(1); 300])],
            &WriteOptions::default(),
        )
        .unwrap();
    store.set_cache_bytes(0).unwrap();
    let from_lmdb = read_both_ways(&store, 300);
    store.set_cache_bytes(4096).unwrap();
    assert!(!store.preload("customer").unwrap());
    assert_eq!(store.cache_bytes_used().unwrap(), 0);
    assert_same_reads(&read_both_ways(&store, 300), &from_lmdb);
}

#[test]
fn reads_load_the_view_into_memory_in_the_background() {
    let (_dir, store) = open();
    store
        .register_view(&spec(None), OnSchemaChange::Error)
        .unwrap();
    store
        .write(
            "customer",
            &[batch(&[1, 2], &[10, 10], &[Some(1), Some(2)])],
            &WriteOptions::default(),
        )
        .unwrap();
    let first = read_both_ways(&store, 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.cache_bytes_used().unwrap() == 0 {
        assert!(Instant::now() < deadline, "no replica was loaded");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_same_reads(&read_both_ways(&store, 3), &first);
    // A new version of the view drops the old one's replica.
    let mut wider = spec(None);
    wider.features.push(Column::new("extra", ValueType::Int64));
    store
        .register_view(&wider, OnSchemaChange::NewVersion)
        .unwrap();
    assert_eq!(store.cache_bytes_used().unwrap(), 0);
}

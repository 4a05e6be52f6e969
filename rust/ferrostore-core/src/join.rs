//! The point-in-time join: for each entity row, the latest feature row of the same entity
//! at or before the entity row's time, within the view's ttl.
//!
//! Semantics are Feast's without its row losses: exactly one output row per entity row, in
//! input order; the window is `entity_ts - ttl <= feature_ts <= entity_ts` (no lower bound
//! when the ttl is 0 or absent); ties on event time go to the greatest created timestamp,
//! then to the later source row; no match gives nulls. Timestamps are compared as UTC
//! instants; naive ones are UTC.
//!
//! The kernel groups feature rows by encoded key with a hash map, sorts each group by time
//! (in parallel), then answers each entity row with a binary search (in parallel) and
//! gathers the feature columns with Arrow's `take` (`interleave` across several batches).

use std::ops::RangeInclusive;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema};
use rayon::prelude::*;

use crate::fxhash::FxMap;
use crate::online::codec::KeyColumn;
use crate::online::ValueType;
use crate::timestamps::utc_micros;
use crate::{Error, Result};

/// What to join and how.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// Key columns of the entity rows, in key order.
    pub entity_keys: Vec<String>,
    /// The matching key columns of the feature rows, in the same order.
    pub feature_keys: Vec<String>,
    pub entity_timestamp: String,
    pub feature_timestamp: String,
    /// Breaks ties on event time: the greatest created timestamp wins.
    pub created_timestamp: Option<String>,
    /// `None` or 0: no lower bound.
    pub ttl_micros: Option<i64>,
    /// `(feature column, output name)` pairs.
    pub columns: Vec<(String, String)>,
}

fn column<'a>(batch: &'a RecordBatch, name: &str, side: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        Error::SchemaMismatch(format!(
            "column '{name}' is missing from the {side}: they have columns [{}]",
            names.join(", ")
        ))
    })
}

/// The key type both sides are normalised to, and the column cast to it.
fn normalised_key(array: &ArrayRef, name: &str, side: &str) -> Result<(ValueType, ArrayRef)> {
    use DataType as D;
    let target = match array.data_type() {
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => {
            ValueType::Int64
        }
        D::Utf8 | D::LargeUtf8 | D::Utf8View => ValueType::String,
        D::Dictionary(_, v) if matches!(v.as_ref(), D::Utf8 | D::LargeUtf8) => ValueType::String,
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => ValueType::Bytes,
        other => {
            return Err(Error::SchemaMismatch(format!(
                "join key '{name}' of the {side} has type {other}: expected an integer, string or binary column"
            )))
        }
    };
    let cast_array = if array.data_type() == &target.arrow_type() {
        Arc::clone(array)
    } else {
        cast(array, &target.arrow_type()).map_err(|e| {
            Error::SchemaMismatch(format!(
                "join key '{name}' of the {side} cannot be read as {target}: {e}"
            ))
        })?
    };
    Ok((target, cast_array))
}

fn timestamps(batch: &RecordBatch, name: &str, side: &str) -> Result<ArrayRef> {
    let array = column(batch, name, side)?;
    let role = format!("timestamp of the {side}");
    match utc_micros(array, name, &role)? {
        Some(micros) => Ok(micros),
        None => match array.data_type() {
            DataType::Date32 | DataType::Date64 => {
                Ok(cast(array, &crate::online::timestamp_type())?)
            }
            other => Err(Error::SchemaMismatch(format!(
                "column '{name}' ({role}) has type {other}: expected a timestamp"
            ))),
        },
    }
}

/// An arena of encoded keys and each row's `(start, end)` in it (`None`: a null key part).
type EncodedKeys = (Vec<u8>, Vec<Option<(u32, u32)>>);

/// Encoded keys of every row into one arena; `None` for rows with a null key part.
fn encode_keys(columns: &[(ValueType, ArrayRef)], rows: usize) -> Result<EncodedKeys> {
    let cols = columns
        .iter()
        .map(|(t, a)| KeyColumn::new(*t, a))
        .collect::<Result<Vec<_>>>()?;
    let mut arena = Vec::with_capacity(rows * 10);
    let mut spans = Vec::with_capacity(rows);
    for row in 0..rows {
        if columns.iter().any(|(_, a)| a.is_null(row)) {
            spans.push(None);
            continue;
        }
        let start = arena.len();
        for col in &cols {
            col.encode(row, &mut arena);
        }
        let to_u32 = |n: usize| {
            u32::try_from(n).map_err(|_| Error::InvalidArgument("join keys exceed 4 GiB".into()))
        };
        spans.push(Some((to_u32(start)?, to_u32(arena.len())?)));
    }
    Ok((arena, spans))
}

fn key_columns(
    batch: &RecordBatch,
    names: &[String],
    side: &str,
) -> Result<Vec<(ValueType, ArrayRef)>> {
    names
        .iter()
        .map(|n| normalised_key(column(batch, n, side)?, n, side))
        .collect()
}

/// Joins `features` onto `entities` as of each entity row's time.
///
/// `features` may come in several batches of one schema (as a Parquet scan yields them):
/// rows are addressed across them without concatenating them first.
///
/// Returns one batch with a column per `spec.columns` output name and one row per entity
/// row, in input order.
///
/// # Errors
/// `InvalidArgument` for an inconsistent spec or no feature batch; `SchemaMismatch` for a
/// missing column, key types that differ between the sides (integer vs string), a
/// non-timestamp time column or null entity timestamps.
pub fn point_in_time_join(
    entities: &RecordBatch,
    features: &[RecordBatch],
    spec: &JoinSpec,
) -> Result<RecordBatch> {
    if spec.entity_keys.is_empty() || spec.entity_keys.len() != spec.feature_keys.len() {
        return Err(Error::InvalidArgument(format!(
            "entity keys {:?} and feature keys {:?} must be non-empty and of the same length",
            spec.entity_keys, spec.feature_keys
        )));
    }
    let mut outputs = std::collections::HashSet::new();
    for (_, output) in &spec.columns {
        if !outputs.insert(output.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "output column '{output}' is requested twice"
            )));
        }
    }
    if features.is_empty() {
        return Err(Error::InvalidArgument(
            "no feature batch: pass at least one, possibly empty".into(),
        ));
    }
    let ttl = spec.ttl_micros.filter(|t| *t > 0);
    let feature_rows: usize = features.iter().map(RecordBatch::num_rows).sum();
    if u32::try_from(feature_rows).is_err() {
        return Err(Error::InvalidArgument(format!(
            "{feature_rows} feature rows exceed the 4,294,967,295 rows one join handles"
        )));
    }

    let entity_key_cols = key_columns(entities, &spec.entity_keys, "entity rows")?;
    let feature_key_cols = features
        .iter()
        .map(|b| key_columns(b, &spec.feature_keys, "feature rows"))
        .collect::<Result<Vec<_>>>()?;
    for batch_keys in &feature_key_cols {
        for (i, ((et, _), (ft, _))) in entity_key_cols.iter().zip(batch_keys).enumerate() {
            if et != ft {
                return Err(Error::SchemaMismatch(format!(
                    "join key '{}' is {et} in the entity rows but '{}' is {ft} in the feature rows",
                    spec.entity_keys[i], spec.feature_keys[i]
                )));
            }
        }
    }
    let entity_ts_array = timestamps(entities, &spec.entity_timestamp, "entity rows")?;
    if entity_ts_array.null_count() > 0 {
        return Err(Error::SchemaMismatch(format!(
            "timestamp column '{}' of the entity rows has {} null values: every row needs one",
            spec.entity_timestamp,
            entity_ts_array.null_count()
        )));
    }
    let entity_ts = entity_ts_array
        .as_primitive::<TimestampMicrosecondType>()
        .values();
    let ts_arrays = features
        .iter()
        .map(|b| timestamps(b, &spec.feature_timestamp, "feature rows"))
        .collect::<Result<Vec<_>>>()?;
    let created_arrays = match &spec.created_timestamp {
        Some(name) => Some(
            features
                .iter()
                .map(|b| timestamps(b, name, "feature rows"))
                .collect::<Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let sources = features
        .iter()
        .map(|batch| {
            spec.columns
                .iter()
                .map(|(source, _)| column(batch, source, "feature rows").cloned())
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;

    let window = window_of(entity_ts, ttl);
    let feature_ts: Vec<&arrow_array::TimestampMicrosecondArray> = ts_arrays
        .iter()
        .map(|a| a.as_primitive::<TimestampMicrosecondType>())
        .collect();
    let usable = |b: usize, row: usize| {
        let ts = feature_ts[b];
        ts.is_valid(row) && window.contains(&ts.value(row))
    };
    // Entity keys are numbered (one group per distinct key); usable feature rows find
    // their entity's group, in parallel, and rows of no entity's key drop out.
    let (entity_group, n_groups, group_of) = match &entity_key_cols[..] {
        // One integer key, the common case: hash the integers themselves.
        [(ValueType::Int64, e)] => {
            let e = e.as_primitive::<arrow_array::types::Int64Type>();
            let keys: Vec<&arrow_array::Int64Array> = feature_key_cols
                .iter()
                .map(|k| k[0].1.as_primitive::<arrow_array::types::Int64Type>())
                .collect();
            int_group_ids(e, &row_chunks(features), |b, row| {
                let f = keys[b];
                (f.is_valid(row) && usable(b, row)).then(|| f.value(row))
            })
        }
        _ => {
            let encoded = feature_key_cols
                .par_iter()
                .zip(features)
                .map(|(k, b)| encode_keys(k, b.num_rows()))
                .collect::<Result<Vec<_>>>()?;
            let (e_arena, e_spans) = encode_keys(&entity_key_cols, entities.num_rows())?;
            group_ids(
                |row| key_slice(&e_arena, e_spans[row]),
                entities.num_rows(),
                &row_chunks(features),
                |b, row| {
                    let (arena, spans) = &encoded[b];
                    key_slice(arena, spans[row]).filter(|_| usable(b, row))
                },
            )
        }
    };
    // Counting sort of (event time, row) by group, then each group sorted; ties on event
    // time are settled at lookup by (created, row), rarely more than one row.
    let mut offsets = vec![0usize; n_groups + 1];
    for &g in &group_of {
        if g != u32::MAX {
            offsets[g as usize + 1] += 1;
        }
    }
    for i in 1..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    let mut sorted = vec![(0i64, 0u32); offsets[n_groups]];
    let mut cursor = offsets.clone();
    let mut start = 0usize;
    for ts in &feature_ts {
        let ts = ts.values();
        let groups = &group_of[start..start + ts.len()];
        for (offset, (&g, &t)) in groups.iter().zip(ts.iter()).enumerate() {
            if g != u32::MAX {
                // Row counts fit u32 (checked above).
                sorted[cursor[g as usize]] = (t, (start + offset) as u32);
                cursor[g as usize] += 1;
            }
        }
        start += ts.len();
    }
    drop((group_of, cursor));
    sort_groups(&mut sorted, &offsets);
    let starts = batch_starts(features);
    // Ties on event time: the greatest created time (null oldest), then the later row.
    let tie_rank = |row: u32| {
        let created = created_arrays.as_ref().map_or(0, |arrays| {
            let (b, r) = locate(&starts, row as usize);
            let c = arrays[b].as_primitive::<TimestampMicrosecondType>();
            if c.is_null(r) {
                i64::MIN
            } else {
                c.value(r)
            }
        });
        (created, row)
    };

    // Answer each entity row.
    let matches: Vec<Option<u32>> = entity_group
        .par_iter()
        .enumerate()
        .map(|(row, group)| {
            let g = (*group)? as usize;
            let group = &sorted[offsets[g]..offsets[g + 1]];
            let ts = entity_ts[row];
            let p = group.partition_point(|&(t, _)| t <= ts);
            let (found_ts, _) = *group.get(p.checked_sub(1)?)?;
            if ttl.is_some_and(|ttl| found_ts < ts.saturating_sub(ttl)) {
                return None;
            }
            let (_, last) = group[p - 1];
            if p < 2 || group[p - 2].0 != found_ts {
                return Some(last); // no tie: the common case skips the created times
            }
            group[..p]
                .iter()
                .rev()
                .take_while(|&&(t, _)| t == found_ts)
                .map(|&(_, r)| r)
                .max_by_key(|&r| tie_rank(r))
        })
        .collect();

    let columns = gather(&sources, &starts, &matches)?;
    let fields: Vec<Field> = spec
        .columns
        .iter()
        .zip(&columns)
        .map(|((_, output), array)| Field::new(output, array.data_type().clone(), true))
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(entities.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}

/// The first row number of each batch, counting rows across all of them.
fn batch_starts(batches: &[RecordBatch]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(batches.len());
    let mut total = 0usize;
    for batch in batches {
        starts.push(total);
        total += batch.num_rows();
    }
    starts
}

/// The batch and the row in it of row number `row` (see [`batch_starts`]).
fn locate(starts: &[usize], row: usize) -> (usize, usize) {
    let b = starts.partition_point(|&s| s <= row) - 1;
    (b, row - starts[b])
}

/// The output columns: row `matches[i]` (a row number across all batches) of each source
/// column, null where there is no match.
fn gather(
    sources: &[Vec<ArrayRef>],
    starts: &[usize],
    matches: &[Option<u32>],
) -> Result<Vec<ArrayRef>> {
    let width = sources.first().map_or(0, Vec::len);
    if let [one] = sources {
        let indices = UInt32Array::from(matches.to_vec());
        return one
            .par_iter()
            .map(|source| {
                arrow_select::take::take(source.as_ref(), &indices, None).map_err(Error::from)
            })
            .collect();
    }
    // Unmatched rows point at a one-row null array after the batches.
    let null_slot = sources.len();
    let indices: Vec<(usize, usize)> = matches
        .par_iter()
        .map(|m| m.map_or((null_slot, 0), |row| locate(starts, row as usize)))
        .collect();
    (0..width)
        .into_par_iter()
        .map(|c| {
            let null = arrow_array::new_null_array(sources[0][c].data_type(), 1);
            let arrays: Vec<&dyn Array> = sources
                .iter()
                .map(|cols| cols[c].as_ref())
                .chain(std::iter::once(null.as_ref()))
                .collect();
            arrow_select::interleave::interleave(&arrays, &indices).map_err(Error::from)
        })
        .collect()
}

/// The feature times that can match some entity row at `entity_ts`:
/// `[earliest - ttl, latest]` (no lower bound without a ttl).
fn window_of(entity_ts: &[i64], ttl: Option<i64>) -> RangeInclusive<i64> {
    match (entity_ts.iter().min(), entity_ts.iter().max()) {
        (Some(&lo), Some(&hi)) => ttl.map_or(i64::MIN, |t| lo.saturating_sub(t))..=hi,
        _ => i64::MIN..=i64::MAX, // no entity rows: nothing is looked up
    }
}

/// The feature times [`point_in_time_join`] of `entities` under `spec` can use: rows
/// outside it (see [`rows_in_window`]) may be dropped before the join without changing it.
///
/// # Errors
/// `SchemaMismatch` for a missing or non-timestamp entity time column.
pub fn feature_window(entities: &RecordBatch, spec: &JoinSpec) -> Result<RangeInclusive<i64>> {
    let ts = timestamps(entities, &spec.entity_timestamp, "entity rows")?;
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let valid: Vec<i64> = ts.iter().flatten().collect();
    Ok(window_of(&valid, spec.ttl_micros.filter(|t| *t > 0)))
}

/// The rows of a feature batch whose event time is in `window` (nulls dropped).
///
/// # Errors
/// `SchemaMismatch` for a missing or non-timestamp event time column.
pub fn rows_in_window(
    batch: &RecordBatch,
    spec: &JoinSpec,
    window: &RangeInclusive<i64>,
) -> Result<RecordBatch> {
    let ts = timestamps(batch, &spec.feature_timestamp, "feature rows")?;
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let values = ts.values();
    let keep =
        arrow_array::BooleanArray::from(arrow_buffer::BooleanBuffer::collect_bool(ts.len(), |i| {
            ts.is_valid(i) && window.contains(&values[i])
        }));
    if keep.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(arrow_select::filter::filter_record_batch(batch, &keep)?)
}

fn key_slice(arena: &[u8], span: Option<(u32, u32)>) -> Option<&[u8]> {
    span.map(|(a, b)| &arena[a as usize..b as usize])
}

/// Numbers the distinct keys of the entity rows (`None` for a null key), then finds the
/// group of every feature row (`u32::MAX` when it cannot match), chunk by chunk in
/// parallel; `chunks` are `(batch, rows)` in row order.
fn group_ids<K: std::hash::Hash + Eq + Send + Sync>(
    entity_key: impl Fn(usize) -> Option<K>,
    entity_rows: usize,
    chunks: &[(usize, std::ops::Range<usize>)],
    feature_key: impl Fn(usize, usize) -> Option<K> + Sync,
) -> (Vec<Option<u32>>, usize, Vec<u32>) {
    let mut groups: FxMap<K, u32> = FxMap::default();
    let entity_group = (0..entity_rows)
        .map(|row| {
            entity_key(row).map(|key| {
                let next = u32::try_from(groups.len()).unwrap_or(u32::MAX);
                *groups.entry(key).or_insert(next)
            })
        })
        .collect();
    let group_of = rows_to_groups(chunks, |b, row| {
        feature_key(b, row)
            .and_then(|key| groups.get(&key).copied())
            .unwrap_or(u32::MAX)
    });
    (entity_group, groups.len(), group_of)
}

/// Entity keys spanning at most this many values per entity row (or [`DENSE_MIN_SPAN`])
/// are numbered through a table indexed by `key - min` instead of a hash map.
const DENSE_SPAN_PER_ROW: usize = 4;
const DENSE_MIN_SPAN: usize = 1 << 16;

/// [`group_ids`] for one integer key. Keys are often dense (sequential ids): then each
/// feature row finds its group with one load from a table of 4 bytes per key value, where a
/// hash map of the same keys is several times larger and probed at random. On 1M entity
/// rows over 50M feature rows (`benches/features_side_by_side.py`), a training set went from
/// 7.2-7.8 to 5.9-6.4 s, the builds taking turns.
fn int_group_ids(
    entity: &arrow_array::Int64Array,
    chunks: &[(usize, std::ops::Range<usize>)],
    feature_key: impl Fn(usize, usize) -> Option<i64> + Sync,
) -> (Vec<Option<u32>>, usize, Vec<u32>) {
    let rows = entity.len();
    let valid = || {
        (0..rows)
            .filter(|&r| entity.is_valid(r))
            .map(|r| entity.value(r))
    };
    let span = match (valid().min(), valid().max()) {
        (Some(lo), Some(hi)) => usize::try_from(hi.abs_diff(lo))
            .ok()
            .and_then(|d| d.checked_add(1))
            .filter(|&span| span <= DENSE_MIN_SPAN.max(DENSE_SPAN_PER_ROW * rows))
            .map(|span| (lo, span)),
        _ => None,
    };
    let Some((lo, span)) = span else {
        return group_ids(
            |row| entity.is_valid(row).then(|| entity.value(row)),
            rows,
            chunks,
            feature_key,
        );
    };
    // Groups are numbered in order of first appearance, as in `group_ids`.
    let mut table = vec![u32::MAX; span];
    let mut groups = 0u32;
    let entity_group = (0..rows)
        .map(|row| {
            entity.is_valid(row).then(|| {
                let slot = &mut table[entity.value(row).abs_diff(lo) as usize];
                if *slot == u32::MAX {
                    *slot = groups;
                    groups += 1;
                }
                *slot
            })
        })
        .collect();
    let group_of = rows_to_groups(chunks, |b, row| {
        // A key below `lo` wraps to a huge offset: like one above the range, it has no slot.
        feature_key(b, row)
            .and_then(|key| table.get(key.wrapping_sub(lo) as u64 as usize).copied())
            .unwrap_or(u32::MAX)
    });
    (entity_group, groups as usize, group_of)
}

/// `group(batch, row)` of every row of `chunks` (in order), chunks filled in parallel.
fn rows_to_groups(
    chunks: &[(usize, std::ops::Range<usize>)],
    group: impl Fn(usize, usize) -> u32 + Sync,
) -> Vec<u32> {
    let total = chunks.iter().map(|(_, rows)| rows.len()).sum();
    let mut out = vec![u32::MAX; total];
    let mut parts = Vec::with_capacity(chunks.len());
    let mut rest = &mut out[..];
    for (b, rows) in chunks {
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(rows.len());
        parts.push((part, *b, rows.clone()));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(part, b, rows)| {
        for (slot, row) in part.iter_mut().zip(rows) {
            *slot = group(b, row);
        }
    });
    out
}

/// `(batch, rows)` pieces of at most 65,536 rows covering every row of `batches` in order.
fn row_chunks(batches: &[RecordBatch]) -> Vec<(usize, std::ops::Range<usize>)> {
    const CHUNK: usize = 65_536;
    batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| {
            (0..batch.num_rows())
                .step_by(CHUNK)
                .map(move |start| (b, start..(start + CHUNK).min(batch.num_rows())))
        })
        .collect()
}

/// Concatenates `batches` of one `schema` into a single batch (the join addresses rows by
/// one index).
///
/// # Errors
/// `SchemaMismatch` when the batches' schemas differ.
pub fn single_batch(
    schema: arrow_schema::SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch> {
    match batches {
        [one] => Ok(one.clone()),
        _ => Ok(arrow_select::concat::concat_batches(&schema, batches)?),
    }
}

/// Sorts each group's slice of `items`, groups split across threads.
fn sort_groups<T: Ord + Send>(items: &mut [T], offsets: &[usize]) {
    let threads = rayon::current_num_threads().max(1);
    let target = items.len() / (threads * 4) + 1;
    // Cut `items` at group boundaries into chunks of about `target` rows.
    let mut chunks: Vec<(&mut [T], Vec<usize>)> = Vec::new();
    let mut rest: &mut [T] = items;
    let mut consumed = 0;
    let mut bounds = vec![0usize];
    for window in offsets.windows(2) {
        bounds.push(window[1] - consumed);
        if window[1] - consumed >= target {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(window[1] - consumed);
            chunks.push((head, std::mem::replace(&mut bounds, vec![0])));
            consumed = window[1];
            rest = tail;
        }
    }
    if !rest.is_empty() {
        chunks.push((rest, bounds));
    }
    chunks.into_par_iter().for_each(|(chunk, bounds)| {
        for w in bounds.windows(2) {
            let group = &mut chunk[w[0]..w[1]];
            // Sources are often written in time order: skip groups already sorted.
            if !group.windows(2).all(|w| w[0] <= w[1]) {
                group.sort_unstable();
            }
        }
    });
}

#[cfg(test)]
mod tests;

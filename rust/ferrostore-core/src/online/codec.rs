//! Byte encodings of entity keys and stored rows.
//!
//! Key: the view id (u32, big-endian) then, per join key in order, a type tag and the value
//! (`int32`/`int64` sign-flipped big-endian, `string`/`bytes` length-prefixed), so that keys
//! of different types never collide and integer keys sort numerically.
//!
//! Row: event timestamp and created timestamp (i64 little-endian, microseconds), a null
//! bitmap with one bit per feature, then each non-null value: fixed-width little-endian
//! scalars, `u32` length-prefixed strings and bytes, `u32` count-prefixed lists.

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, ListArray};

use super::schema::{ValueType, UTC};
use crate::{Error, Result};

/// LMDB's default maximum key size.
pub const MAX_KEY_BYTES: usize = 511;

const TAG_INT32: u8 = 1;
const TAG_INT64: u8 = 2;
const TAG_STRING: u8 = 3;
const TAG_BYTES: u8 = 4;

/// A single value, owned: what the one-entity read path returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Bool(bool),
    String(String),
    Bytes(Vec<u8>),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
    ListFloat32(Vec<f32>),
    ListFloat64(Vec<f64>),
    ListInt64(Vec<i64>),
    ListString(Vec<String>),
}

/// A join-key value given by a caller of the one-entity read path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Int(i64),
    String(String),
    Bytes(Vec<u8>),
}

/// Starts a key with the view id prefix.
pub fn key_prefix(view_id: u32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&view_id.to_be_bytes());
}

fn push_len_prefixed(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    // Key parts are bounded by MAX_KEY_BYTES, checked after encoding.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one typed key value given as an owned [`KeyValue`].
///
/// # Errors
/// `SchemaMismatch` when the value does not fit the key's type.
pub fn encode_key_value(
    key_name: &str,
    value_type: ValueType,
    value: &KeyValue,
    out: &mut Vec<u8>,
) -> Result<()> {
    match (value_type, value) {
        (ValueType::Int32, KeyValue::Int(v)) => {
            let v = i32::try_from(*v).map_err(|_| {
                Error::SchemaMismatch(format!(
                    "join key '{key_name}' value {v} does not fit its type int32"
                ))
            })?;
            out.push(TAG_INT32);
            out.extend_from_slice(&((v as u32) ^ 0x8000_0000).to_be_bytes());
        }
        (ValueType::Int64, KeyValue::Int(v)) => {
            out.push(TAG_INT64);
            out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes());
        }
        (ValueType::String, KeyValue::String(s)) => {
            push_len_prefixed(out, TAG_STRING, s.as_bytes())
        }
        (ValueType::Bytes, KeyValue::Bytes(b)) => push_len_prefixed(out, TAG_BYTES, b),
        (t, v) => {
            return Err(Error::SchemaMismatch(format!(
                "join key '{key_name}' has type {t}, got the value {v:?}"
            )))
        }
    }
    Ok(())
}

/// A key column of a batch, already cast to the key's type.
pub enum KeyColumn<'a> {
    Int32(&'a arrow_array::Int32Array),
    Int64(&'a arrow_array::Int64Array),
    String(&'a arrow_array::StringArray),
    Bytes(&'a arrow_array::BinaryArray),
}

impl<'a> KeyColumn<'a> {
    /// Views `array` (cast to `value_type`) as a key column.
    pub fn new(value_type: ValueType, array: &'a ArrayRef) -> Result<Self> {
        Ok(match value_type {
            ValueType::Int32 => KeyColumn::Int32(array.as_primitive::<Int32Type>()),
            ValueType::Int64 => KeyColumn::Int64(array.as_primitive::<Int64Type>()),
            ValueType::String => KeyColumn::String(array.as_string::<i32>()),
            ValueType::Bytes => KeyColumn::Bytes(array.as_binary::<i32>()),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "{other} cannot be a key type"
                )))
            }
        })
    }

    /// Appends the key part of `row`.
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            KeyColumn::Int32(a) => {
                out.push(TAG_INT32);
                out.extend_from_slice(&((a.value(row) as u32) ^ 0x8000_0000).to_be_bytes());
            }
            KeyColumn::Int64(a) => {
                out.push(TAG_INT64);
                out.extend_from_slice(&((a.value(row) as u64) ^ (1 << 63)).to_be_bytes());
            }
            KeyColumn::String(a) => push_len_prefixed(out, TAG_STRING, a.value(row).as_bytes()),
            KeyColumn::Bytes(a) => push_len_prefixed(out, TAG_BYTES, a.value(row)),
        }
    }
}

/// A feature column of a batch, already cast to the feature's Arrow type.
pub struct ValueColumn<'a> {
    name: &'a str,
    value_type: ValueType,
    array: &'a ArrayRef,
}

impl<'a> ValueColumn<'a> {
    /// Wraps column `name`, whose `array` must already have `value_type.arrow_type()`.
    pub fn new(name: &'a str, value_type: ValueType, array: &'a ArrayRef) -> Self {
        ValueColumn {
            name,
            value_type,
            array,
        }
    }

    /// Whether `row` is null.
    pub fn is_null(&self, row: usize) -> bool {
        self.array.is_null(row)
    }

    /// Appends the encoding of the non-null value at `row`.
    ///
    /// # Errors
    /// `SchemaMismatch` for a null element inside a list.
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<()> {
        let a = self.array;
        match self.value_type {
            ValueType::Int32 => {
                out.extend_from_slice(&a.as_primitive::<Int32Type>().value(row).to_le_bytes())
            }
            ValueType::Int64 => {
                out.extend_from_slice(&a.as_primitive::<Int64Type>().value(row).to_le_bytes())
            }
            ValueType::Float32 => {
                out.extend_from_slice(&a.as_primitive::<Float32Type>().value(row).to_le_bytes())
            }
            ValueType::Float64 => {
                out.extend_from_slice(&a.as_primitive::<Float64Type>().value(row).to_le_bytes())
            }
            ValueType::Timestamp => out.extend_from_slice(
                &a.as_primitive::<TimestampMicrosecondType>()
                    .value(row)
                    .to_le_bytes(),
            ),
            ValueType::Bool => out.push(u8::from(a.as_boolean().value(row))),
            ValueType::String => push_bytes(out, a.as_string::<i32>().value(row).as_bytes()),
            ValueType::Bytes => push_bytes(out, a.as_binary::<i32>().value(row)),
            ValueType::ListFloat32 => encode_list::<Float32Type>(a.as_list::<i32>(), row, out)?,
            ValueType::ListFloat64 => encode_list::<Float64Type>(a.as_list::<i32>(), row, out)?,
            ValueType::ListInt64 => encode_list::<Int64Type>(a.as_list::<i32>(), row, out)?,
            ValueType::ListString => {
                let list = a.as_list::<i32>();
                let items = list.value(row);
                if items.null_count() > 0 {
                    return Err(null_in_list());
                }
                let items = items.as_string::<i32>();
                push_u32(out, items.len());
                for s in items.iter().flatten() {
                    push_bytes(out, s.as_bytes());
                }
            }
        }
        Ok(())
    }
}

fn null_in_list() -> Error {
    Error::SchemaMismatch(
        "a list value holds a null element: list elements must not be null".into(),
    )
}

fn push_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

trait LeBytes: Sized + Copy {
    const WIDTH: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            const WIDTH: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                let mut buf = [0u8; std::mem::size_of::<$t>()];
                buf.copy_from_slice(&bytes[..Self::WIDTH]);
                <$t>::from_le_bytes(buf)
            }
        }
    )*};
}
le_bytes!(i32, i64, f32, f64);

fn encode_list<T>(list: &ListArray, row: usize, out: &mut Vec<u8>) -> Result<()>
where
    T: arrow_array::ArrowPrimitiveType,
    T::Native: LeBytes,
{
    let items = list.value(row);
    if items.null_count() > 0 {
        return Err(null_in_list());
    }
    let items = items.as_primitive::<T>();
    push_u32(out, items.len());
    for v in items.values().iter() {
        v.put(out);
    }
    Ok(())
}

/// A stored row, parsed lazily.
pub struct StoredRow<'a> {
    pub event_ts: i64,
    pub created_ts: i64,
    nulls: &'a [u8],
    body: &'a [u8],
}

fn corrupt() -> Error {
    Error::Storage("corrupt row in the online store: a stored value is truncated".into())
}

impl<'a> StoredRow<'a> {
    /// Parses the header of a row of a view with `n_features` features.
    ///
    /// # Errors
    /// `Storage` when the bytes are too short.
    pub fn parse(bytes: &'a [u8], n_features: usize) -> Result<Self> {
        let bitmap_len = n_features.div_ceil(8);
        if bytes.len() < 16 + bitmap_len {
            return Err(corrupt());
        }
        Ok(StoredRow {
            event_ts: i64::get(&bytes[0..8]),
            created_ts: i64::get(&bytes[8..16]),
            nulls: &bytes[16..16 + bitmap_len],
            body: &bytes[16 + bitmap_len..],
        })
    }

    /// Only the timestamps of a stored row, for the newer-wins comparison.
    pub fn timestamps(bytes: &[u8]) -> Result<(i64, i64)> {
        if bytes.len() < 16 {
            return Err(corrupt());
        }
        Ok((i64::get(&bytes[0..8]), i64::get(&bytes[8..16])))
    }

    /// Calls `f(index, Some(encoded value) | None)` for each feature in schema order.
    pub fn for_each(
        &self,
        features: &[super::schema::Column],
        mut f: impl FnMut(usize, Option<&'a [u8]>) -> Result<()>,
    ) -> Result<()> {
        let mut rest = self.body;
        for (i, t) in features.iter().map(|c| c.value_type).enumerate() {
            if self.nulls[i / 8] & (1 << (i % 8)) != 0 {
                f(i, None)?;
                continue;
            }
            let len = encoded_len(t, rest)?;
            let (value, tail) = rest.split_at(len);
            f(i, Some(value))?;
            rest = tail;
        }
        Ok(())
    }
}

fn read_u32(bytes: &[u8]) -> Result<usize> {
    let b: [u8; 4] = bytes
        .get(..4)
        .ok_or_else(corrupt)?
        .try_into()
        .map_err(|_| corrupt())?;
    Ok(u32::from_le_bytes(b) as usize)
}

fn encoded_len(t: ValueType, bytes: &[u8]) -> Result<usize> {
    let len = match t {
        ValueType::Int32 | ValueType::Float32 => 4,
        ValueType::Int64 | ValueType::Float64 | ValueType::Timestamp => 8,
        ValueType::Bool => 1,
        ValueType::String | ValueType::Bytes => 4 + read_u32(bytes)?,
        ValueType::ListFloat32 => 4 + 4 * read_u32(bytes)?,
        ValueType::ListFloat64 | ValueType::ListInt64 => 4 + 8 * read_u32(bytes)?,
        ValueType::ListString => {
            let n = read_u32(bytes)?;
            let mut pos = 4;
            for _ in 0..n {
                pos += 4 + read_u32(bytes.get(pos..).ok_or_else(corrupt)?)?;
            }
            pos
        }
    };
    if len > bytes.len() {
        return Err(corrupt());
    }
    Ok(len)
}

fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| corrupt())
}

fn list_items<'a, T: LeBytes + 'a>(bytes: &'a [u8]) -> impl Iterator<Item = T> + 'a {
    bytes[4..].chunks_exact(T::WIDTH).map(T::get)
}

fn string_items(bytes: &[u8]) -> Result<Vec<&str>> {
    let n = read_u32(bytes)?;
    let mut out = Vec::with_capacity(n);
    let mut pos = 4;
    for _ in 0..n {
        let len = read_u32(&bytes[pos..])?;
        out.push(utf8(&bytes[pos + 4..pos + 4 + len])?);
        pos += 4 + len;
    }
    Ok(out)
}

/// Decodes one encoded (non-null) value into an owned [`Value`].
// Inlined: returned through the stack, a decoded value is stored in two halves and loaded
// back whole, which stalls store forwarding once per value (about 20% of a 100-entity read).
#[inline(always)]
pub fn decode_value(t: ValueType, bytes: &[u8]) -> Result<Value> {
    Ok(match t {
        ValueType::Int32 => Value::Int32(i32::get(bytes)),
        ValueType::Int64 => Value::Int64(i64::get(bytes)),
        ValueType::Float32 => Value::Float32(f32::get(bytes)),
        ValueType::Float64 => Value::Float64(f64::get(bytes)),
        ValueType::Timestamp => Value::Timestamp(i64::get(bytes)),
        ValueType::Bool => Value::Bool(bytes[0] != 0),
        ValueType::String => Value::String(utf8(&bytes[4..])?.to_owned()),
        ValueType::Bytes => Value::Bytes(bytes[4..].to_vec()),
        ValueType::ListFloat32 => Value::ListFloat32(list_items(bytes).collect()),
        ValueType::ListFloat64 => Value::ListFloat64(list_items(bytes).collect()),
        ValueType::ListInt64 => Value::ListInt64(list_items(bytes).collect()),
        ValueType::ListString => Value::ListString(
            string_items(bytes)?
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
    })
}

/// A typed Arrow builder for one output column.
pub enum ColumnBuilder {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    String(StringBuilder),
    Bytes(BinaryBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    ListFloat32(ListBuilder<Float32Builder>),
    ListFloat64(ListBuilder<Float64Builder>),
    ListInt64(ListBuilder<Int64Builder>),
    ListString(ListBuilder<StringBuilder>),
}

impl ColumnBuilder {
    /// A builder for `rows` values of type `t`.
    pub fn new(t: ValueType, rows: usize) -> Self {
        match t {
            ValueType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(rows)),
            ValueType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            ValueType::Float32 => ColumnBuilder::Float32(Float32Builder::with_capacity(rows)),
            ValueType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            ValueType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(rows)),
            ValueType::String => {
                ColumnBuilder::String(StringBuilder::with_capacity(rows, rows * 8))
            }
            ValueType::Bytes => ColumnBuilder::Bytes(BinaryBuilder::with_capacity(rows, rows * 8)),
            ValueType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(UTC),
            ),
            ValueType::ListFloat32 => {
                ColumnBuilder::ListFloat32(ListBuilder::new(Float32Builder::new()))
            }
            ValueType::ListFloat64 => {
                ColumnBuilder::ListFloat64(ListBuilder::new(Float64Builder::new()))
            }
            ValueType::ListInt64 => ColumnBuilder::ListInt64(ListBuilder::new(Int64Builder::new())),
            ValueType::ListString => {
                ColumnBuilder::ListString(ListBuilder::new(StringBuilder::new()))
            }
        }
    }

    /// Appends a null.
    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::String(b) => b.append_null(),
            ColumnBuilder::Bytes(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::ListFloat32(b) => b.append_null(),
            ColumnBuilder::ListFloat64(b) => b.append_null(),
            ColumnBuilder::ListInt64(b) => b.append_null(),
            ColumnBuilder::ListString(b) => b.append_null(),
        }
    }

    /// Appends one encoded (non-null) value.
    pub fn append_encoded(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            ColumnBuilder::Int32(b) => b.append_value(i32::get(bytes)),
            ColumnBuilder::Int64(b) => b.append_value(i64::get(bytes)),
            ColumnBuilder::Float32(b) => b.append_value(f32::get(bytes)),
            ColumnBuilder::Float64(b) => b.append_value(f64::get(bytes)),
            ColumnBuilder::Bool(b) => b.append_value(bytes[0] != 0),
            ColumnBuilder::String(b) => b.append_value(utf8(&bytes[4..])?),
            ColumnBuilder::Bytes(b) => b.append_value(&bytes[4..]),
            ColumnBuilder::Timestamp(b) => b.append_value(i64::get(bytes)),
            ColumnBuilder::ListFloat32(b) => {
                b.values().extend(list_items::<f32>(bytes).map(Some));
                b.append(true);
            }
            ColumnBuilder::ListFloat64(b) => {
                b.values().extend(list_items::<f64>(bytes).map(Some));
                b.append(true);
            }
            ColumnBuilder::ListInt64(b) => {
                b.values().extend(list_items::<i64>(bytes).map(Some));
                b.append(true);
            }
            ColumnBuilder::ListString(b) => {
                for s in string_items(bytes)? {
                    b.values().append_value(s);
                }
                b.append(true);
            }
        }
        Ok(())
    }

    /// The finished Arrow array.
    pub fn finish(self) -> ArrayRef {
        fn done(mut b: impl ArrayBuilder) -> ArrayRef {
            b.finish()
        }
        match self {
            ColumnBuilder::Int32(b) => done(b),
            ColumnBuilder::Int64(b) => done(b),
            ColumnBuilder::Float32(b) => done(b),
            ColumnBuilder::Float64(b) => done(b),
            ColumnBuilder::Bool(b) => done(b),
            ColumnBuilder::String(b) => done(b),
            ColumnBuilder::Bytes(b) => done(b),
            ColumnBuilder::Timestamp(b) => done(b),
            ColumnBuilder::ListFloat32(b) => done(b),
            ColumnBuilder::ListFloat64(b) => done(b),
            ColumnBuilder::ListInt64(b) => done(b),
            ColumnBuilder::ListString(b) => done(b),
        }
    }
}

/// Appends the encoding of a whole row to `out`: timestamps, null bitmap, values.
pub fn encode_row(
    columns: &[ValueColumn<'_>],
    row: usize,
    event_ts: i64,
    created_ts: i64,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.extend_from_slice(&event_ts.to_le_bytes());
    out.extend_from_slice(&created_ts.to_le_bytes());
    let bitmap_at = out.len();
    out.resize(bitmap_at + columns.len().div_ceil(8), 0);
    for (i, col) in columns.iter().enumerate() {
        if col.is_null(row) {
            out[bitmap_at + i / 8] |= 1 << (i % 8);
        } else {
            col.encode(row, out)
                .map_err(|e| Error::SchemaMismatch(format!("column '{}': {e}", col.name)))?;
        }
    }
    Ok(())
}

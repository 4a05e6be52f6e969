//! Timestamps: every instant ferrostore compares or stores is microseconds since the epoch,
//! UTC, as Arrow `timestamp[us, tz=UTC]`.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, TimestampMicrosecondArray};
use arrow_schema::DataType;

use crate::online::schema::UTC;
use crate::{Error, Result};

/// Rescales any Arrow timestamp to microseconds UTC without a cast: Arrow stores instants
/// as UTC whatever the zone, and naive times are taken as UTC. `None` for other types.
pub fn utc_micros(array: &ArrayRef, name: &str, role: &str) -> Result<Option<ArrayRef>> {
    use arrow_array::types::{
        TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    use arrow_schema::TimeUnit;
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return Ok(None);
    };
    let overflow = || {
        Error::SchemaMismatch(format!(
            "column '{name}' ({role}) holds a timestamp outside the range of microseconds since 1970"
        ))
    };
    let scale = |values: &[i64], factor: i64| -> Result<Vec<i64>> {
        values
            .iter()
            .map(|v| v.checked_mul(factor).ok_or_else(overflow))
            .collect()
    };
    let values: Vec<i64> = match unit {
        TimeUnit::Second => scale(
            array.as_primitive::<TimestampSecondType>().values(),
            1_000_000,
        )?,
        TimeUnit::Millisecond => scale(
            array.as_primitive::<TimestampMillisecondType>().values(),
            1_000,
        )?,
        TimeUnit::Microsecond => array
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .to_vec(),
        TimeUnit::Nanosecond => array
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .iter()
            .map(|v| v.div_euclid(1_000))
            .collect(),
    };
    let rescaled = TimestampMicrosecondArray::new(values.into(), array.nulls().cloned());
    Ok(Some(Arc::new(rescaled.with_timezone(UTC))))
}

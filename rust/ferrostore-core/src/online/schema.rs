//! Typed schemas of feature views: value types, join keys and their Arrow types.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow_schema::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The time zone every stored timestamp is expressed in.
pub const UTC: &str = "UTC";

/// The type of a feature value or a join key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    String,
    Bytes,
    /// Microseconds since the Unix epoch, UTC.
    Timestamp,
    ListFloat32,
    ListFloat64,
    ListInt64,
    ListString,
}

impl ValueType {
    /// All types, in declaration order.
    pub const ALL: [ValueType; 12] = [
        ValueType::Int32,
        ValueType::Int64,
        ValueType::Float32,
        ValueType::Float64,
        ValueType::Bool,
        ValueType::String,
        ValueType::Bytes,
        ValueType::Timestamp,
        ValueType::ListFloat32,
        ValueType::ListFloat64,
        ValueType::ListInt64,
        ValueType::ListString,
    ];

    /// The name used in schemas and error messages (`int64`, `list_float32`...).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Int32 => "int32",
            ValueType::Int64 => "int64",
            ValueType::Float32 => "float32",
            ValueType::Float64 => "float64",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Bytes => "bytes",
            ValueType::Timestamp => "timestamp",
            ValueType::ListFloat32 => "list_float32",
            ValueType::ListFloat64 => "list_float64",
            ValueType::ListInt64 => "list_int64",
            ValueType::ListString => "list_string",
        }
    }

    /// Whether the type may be used in an entity key.
    pub fn is_key_type(self) -> bool {
        matches!(
            self,
            ValueType::Int32 | ValueType::Int64 | ValueType::String | ValueType::Bytes
        )
    }

    /// The Arrow type values of this type are read and written as.
    pub fn arrow_type(self) -> DataType {
        let list = |inner: DataType| DataType::List(Arc::new(Field::new("item", inner, true)));
        match self {
            ValueType::Int32 => DataType::Int32,
            ValueType::Int64 => DataType::Int64,
            ValueType::Float32 => DataType::Float32,
            ValueType::Float64 => DataType::Float64,
            ValueType::Bool => DataType::Boolean,
            ValueType::String => DataType::Utf8,
            ValueType::Bytes => DataType::Binary,
            ValueType::Timestamp => timestamp_type(),
            ValueType::ListFloat32 => list(DataType::Float32),
            ValueType::ListFloat64 => list(DataType::Float64),
            ValueType::ListInt64 => list(DataType::Int64),
            ValueType::ListString => list(DataType::Utf8),
        }
    }
}

/// `timestamp[us, tz=UTC]`, the Arrow type of every timestamp ferrostore returns.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ValueType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ValueType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ValueType::ALL.iter().map(|t| t.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown value type '{s}': expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// A named, typed column of a view: a join key or a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
}

impl Column {
    /// A column called `name` of type `value_type`.
    pub fn new(name: impl Into<String>, value_type: ValueType) -> Self {
        Column {
            name: name.into(),
            value_type,
        }
    }
}

/// What a caller declares for a view: its keys, features and ttl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSpec {
    pub name: String,
    pub join_keys: Vec<Column>,
    pub features: Vec<Column>,
    /// Maximum age of a value at read time, in microseconds; `None` never expires.
    pub ttl_micros: Option<i64>,
}

/// A registered view: its spec plus the identity under which its rows are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewSchema {
    pub name: String,
    /// Starts at 1 and grows with each incompatible schema change.
    pub version: u32,
    /// The key prefix of this version's rows; never reused.
    pub view_id: u32,
    pub join_keys: Vec<Column>,
    pub features: Vec<Column>,
    pub ttl_micros: Option<i64>,
}

impl ViewSchema {
    /// The index of feature `name`, or a `NotFound` error naming the view's features.
    pub fn feature_index(&self, name: &str) -> Result<usize> {
        self.features
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| {
                let names: Vec<_> = self.features.iter().map(|c| c.name.as_str()).collect();
                Error::NotFound(format!(
                    "feature '{name}' is not in view '{}': its features are [{}]",
                    self.name,
                    names.join(", ")
                ))
            })
    }

    /// Whether stored rows of `self` can be read with `spec`'s layout.
    pub fn same_layout(&self, spec: &ViewSpec) -> bool {
        self.join_keys == spec.join_keys && self.features == spec.features
    }
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.contains(':')
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid {kind} name {name:?}: expected 1 to 255 characters without ':' or control characters"
        )))
    }
}

impl ViewSpec {
    /// Checks names, key types, duplicates and ttl.
    ///
    /// # Errors
    /// `InvalidArgument` naming the offending name or value.
    pub fn validate(&self) -> Result<()> {
        check_name("view", &self.name)?;
        if self.join_keys.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "view '{}' has no join keys: expected at least one",
                self.name
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for key in &self.join_keys {
            check_name("join key", &key.name)?;
            if !key.value_type.is_key_type() {
                return Err(Error::InvalidArgument(format!(
                    "join key '{}' of view '{}' has type {}: expected int32, int64, string or bytes",
                    key.name, self.name, key.value_type
                )));
            }
        }
        for col in self.join_keys.iter().chain(&self.features) {
            check_name("feature", &col.name)?;
            if !seen.insert(col.name.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "column '{}' appears twice in view '{}'",
                    col.name, self.name
                )));
            }
        }
        if let Some(ttl) = self.ttl_micros {
            if ttl < 0 {
                return Err(Error::InvalidArgument(format!(
                    "ttl of view '{}' is {ttl} µs: expected 0 (no expiry) or more",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_type_names_round_trip() {
        for t in ValueType::ALL {
            assert_eq!(t.name().parse::<ValueType>().unwrap(), t);
        }
        assert!(
            matches!("float".parse::<ValueType>(), Err(Error::InvalidArgument(m)) if m.contains("'float'"))
        );
    }

    #[test]
    fn validate_rejects_bad_specs() {
        let spec = |keys: Vec<Column>, feats: Vec<Column>| ViewSpec {
            name: "v".into(),
            join_keys: keys,
            features: feats,
            ttl_micros: None,
        };
        assert!(spec(vec![], vec![]).validate().is_err());
        assert!(spec(vec![Column::new("k", ValueType::Float64)], vec![])
            .validate()
            .is_err());
        let dup = spec(
            vec![Column::new("k", ValueType::Int64)],
            vec![Column::new("k", ValueType::Int64)],
        );
        assert!(dup.validate().is_err());
        let bad_name = spec(vec![Column::new("a:b", ValueType::Int64)], vec![]);
        assert!(bad_name.validate().is_err());
        assert!(spec(vec![Column::new("k", ValueType::String)], vec![])
            .validate()
            .is_ok());
    }
}

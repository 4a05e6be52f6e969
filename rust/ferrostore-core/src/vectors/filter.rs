//! Chroma's `where` and `where_document` filters: parsed and validated once, then evaluated
//! against the collection's in-memory metadata indexes into a bitset of matching records.
//!
//! Missing keys: `$ne` and `$nin` match records that lack the key (they are "not equal");
//! every other operator needs the key to be present.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use crate::{Error, Result};

/// A metadata value: Chroma allows strings, integers, floats and booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl MetaValue {
    /// Converts a JSON scalar; `None` for other JSON values.
    pub fn from_json(value: &Json) -> Option<Self> {
        match value {
            Json::String(s) => Some(MetaValue::Str(s.clone())),
            Json::Bool(b) => Some(MetaValue::Bool(*b)),
            Json::Number(n) => n
                .as_i64()
                .map(MetaValue::Int)
                .or_else(|| n.as_f64().map(MetaValue::Float)),
            _ => None,
        }
    }

    fn number(&self) -> Option<Number> {
        match self {
            MetaValue::Int(i) => Some(Number::Int(*i)),
            MetaValue::Float(f) => Some(Number::of_float(*f)),
            _ => None,
        }
    }

    /// Where the value is indexed: strings and booleans in the equality index, numbers in
    /// the sorted one only (equality is a point lookup there; integers and integral floats
    /// are equal, as in Chroma).
    fn index_key(&self) -> IndexKey {
        match self {
            MetaValue::Str(s) => IndexKey::Eq(EqKey::Str(s.clone())),
            MetaValue::Bool(b) => IndexKey::Eq(EqKey::Bool(*b)),
            MetaValue::Int(i) => IndexKey::Num(Number::Int(*i)),
            MetaValue::Float(f) => IndexKey::Num(Number::of_float(*f)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum EqKey {
    Str(String),
    Bool(bool),
}

enum IndexKey {
    Eq(EqKey),
    Num(Number),
}

/// A set of record slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    /// An empty set able to hold slots below `capacity`.
    pub fn with_capacity(capacity: usize) -> Self {
        Bitset {
            words: vec![0; capacity.div_ceil(64)],
        }
    }

    pub fn insert(&mut self, slot: u64) {
        let (w, b) = ((slot / 64) as usize, slot % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << b;
    }

    pub fn remove(&mut self, slot: u64) {
        let (w, b) = ((slot / 64) as usize, slot % 64);
        if let Some(word) = self.words.get_mut(w) {
            *word &= !(1 << b);
        }
    }

    pub fn contains(&self, slot: u64) -> bool {
        let (w, b) = ((slot / 64) as usize, slot % 64);
        self.words.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub fn and(&mut self, other: &Bitset) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    pub fn or(&mut self, other: &Bitset) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    pub fn and_not(&mut self, other: &Bitset) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
    }

    /// The slots in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter_words(0..self.words.len())
    }

    /// How many 64-slot words the set spans: the unit [`Bitset::iter_words`] splits on.
    pub fn word_count(&self) -> usize {
        self.words.len()
    }

    /// The slots of words `words` (slots `64 * words.start` up to `64 * words.end`), in
    /// increasing order.
    pub fn iter_words(&self, words: std::ops::Range<usize>) -> impl Iterator<Item = u64> + '_ {
        let first = words.start;
        self.words[words]
            .iter()
            .enumerate()
            .flat_map(move |(i, &word)| {
                let i = first + i;
                let mut w = word;
                std::iter::from_fn(move || {
                    if w == 0 {
                        return None;
                    }
                    let b = w.trailing_zeros();
                    w &= w - 1;
                    Some(i as u64 * 64 + u64::from(b))
                })
            })
    }
}

/// The slots holding one metadata value: one slot inline, a sorted list while that is
/// smaller than a bitset spanning the slots, a bitset after. A collection with a distinct
/// value per record (names, sizes) then costs a few bytes per record, not a bitset (or an
/// allocation) per value.
#[derive(Debug)]
enum Postings {
    One(u64),
    Sparse(Vec<u64>),
    Dense(Bitset),
}

impl Default for Postings {
    fn default() -> Self {
        Postings::Sparse(Vec::new())
    }
}

impl Postings {
    fn insert(&mut self, slot: u64) {
        match self {
            Postings::One(only) => {
                if *only != slot {
                    *self = Postings::Sparse(vec![slot.min(*only), slot.max(*only)]);
                }
            }
            Postings::Sparse(slots) if slots.is_empty() => *self = Postings::One(slot),
            Postings::Sparse(slots) => {
                match slots.last() {
                    Some(&last) if last >= slot => {
                        if let Err(i) = slots.binary_search(&slot) {
                            slots.insert(i, slot);
                        }
                    }
                    _ => slots.push(slot),
                }
                // A bitset up to the largest slot takes max/8 bytes; the list 8 per slot.
                let max = slots.last().copied().unwrap_or(0);
                if slots.len() as u64 * 64 > max {
                    let mut set = Bitset::with_capacity(max as usize + 1);
                    for &s in slots.iter() {
                        set.insert(s);
                    }
                    *self = Postings::Dense(set);
                }
            }
            Postings::Dense(set) => set.insert(slot),
        }
    }

    fn remove(&mut self, slot: u64) {
        match self {
            Postings::One(only) => {
                if *only == slot {
                    *self = Postings::Sparse(Vec::new());
                }
            }
            Postings::Sparse(slots) => {
                if let Ok(i) = slots.binary_search(&slot) {
                    slots.remove(i);
                }
            }
            Postings::Dense(set) => set.remove(slot),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Postings::One(_) => false,
            Postings::Sparse(slots) => slots.is_empty(),
            Postings::Dense(set) => set.is_empty(),
        }
    }

    /// Adds these slots to `out`.
    fn union_into(&self, out: &mut Bitset) {
        match self {
            Postings::One(slot) => out.insert(*slot),
            Postings::Sparse(slots) => {
                for &s in slots {
                    out.insert(s);
                }
            }
            Postings::Dense(set) => out.or(set),
        }
    }

    fn to_bitset(&self) -> Bitset {
        match self {
            Postings::One(_) | Postings::Sparse(_) => {
                let mut out = Bitset::default();
                self.union_into(&mut out);
                out
            }
            Postings::Dense(set) => set.clone(),
        }
    }
}

/// Per-key indexes of the metadata: equality postings and a sorted numeric index.
#[derive(Debug, Default)]
pub struct MetadataIndex {
    eq: HashMap<String, HashMap<EqKey, Postings>>,
    numeric: HashMap<String, BTreeMap<Number, Postings>>,
}

/// A metadata number as the sorted index orders it: integers exactly (an i64 past 2^53 is
/// not rounded to a float), and equal to the integral float of the same value (as in
/// Chroma). An integral float within the i64 range is stored as that integer, so each value
/// has one key; -0.0 is 0.
#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    /// Not integral, or outside the i64 range.
    Float(f64),
}

/// 2^63, the first float past `i64::MAX`.
const I64_END: f64 = 9_223_372_036_854_775_808.0;

impl Number {
    fn of_float(f: f64) -> Number {
        if f.fract() == 0.0 && (-I64_END..I64_END).contains(&f) {
            Number::Int(f as i64)
        } else {
            Number::Float(f)
        }
    }
}

/// `i` against a float that is not an integer within the i64 range, exactly.
fn cmp_int_float(i: i64, f: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::{Greater, Less};
    if f.is_nan() || f >= I64_END {
        return Less; // NaN sorts last, as total_cmp sorts it among floats
    }
    if f < -I64_END {
        return Greater;
    }
    let whole = f.trunc();
    // `i` equal to the whole part is below f when f's fraction is positive, above otherwise.
    i.cmp(&(whole as i64))
        .then(if f > whole { Less } else { Greater })
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Number {}
impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Number {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.cmp(b),
            (Number::Float(a), Number::Float(b)) => a.total_cmp(b),
            (Number::Int(a), Number::Float(b)) => cmp_int_float(*a, *b),
            (Number::Float(a), Number::Int(b)) => cmp_int_float(*b, *a).reverse(),
        }
    }
}

impl MetadataIndex {
    /// Indexes `metadata` of record `slot`.
    pub fn insert(&mut self, slot: u64, metadata: &[(String, MetaValue)]) {
        for (key, value) in metadata {
            match value.index_key() {
                IndexKey::Eq(k) => {
                    let values = match self.eq.get_mut(key) {
                        Some(values) => values,
                        None => self.eq.entry(key.clone()).or_default(),
                    };
                    values.entry(k).or_default().insert(slot);
                }
                IndexKey::Num(n) => {
                    let sorted = match self.numeric.get_mut(key) {
                        Some(sorted) => sorted,
                        None => self.numeric.entry(key.clone()).or_default(),
                    };
                    sorted.entry(n).or_default().insert(slot);
                }
            }
        }
    }

    /// Removes record `slot` with its `metadata` from the indexes.
    pub fn remove(&mut self, slot: u64, metadata: &[(String, MetaValue)]) {
        for (key, value) in metadata {
            match value.index_key() {
                IndexKey::Eq(k) => {
                    if let Some(values) = self.eq.get_mut(key) {
                        if values.get_mut(&k).is_some_and(|p| {
                            p.remove(slot);
                            p.is_empty()
                        }) {
                            values.remove(&k);
                        }
                    }
                }
                IndexKey::Num(n) => {
                    if let Some(sorted) = self.numeric.get_mut(key) {
                        if sorted.get_mut(&n).is_some_and(|p| {
                            p.remove(slot);
                            p.is_empty()
                        }) {
                            sorted.remove(&n);
                        }
                    }
                }
            }
        }
    }

    /// The slots where `key` equals `value`.
    fn postings(&self, key: &str, value: &MetaValue) -> Option<&Postings> {
        match value.index_key() {
            IndexKey::Eq(k) => self.eq.get(key)?.get(&k),
            IndexKey::Num(n) => self.numeric.get(key)?.get(&n),
        }
    }
}

/// A compiled `where` filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    And(Vec<Where>),
    Or(Vec<Where>),
    Cmp {
        key: String,
        op: CmpOp,
        value: MetaValue,
    },
    In {
        key: String,
        values: Vec<MetaValue>,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A compiled `where_document` filter.
#[derive(Debug, Clone)]
pub enum WhereDocument {
    And(Vec<WhereDocument>),
    Or(Vec<WhereDocument>),
    Contains(String, bool),
    Regex(regex::Regex, bool),
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// The one entry of a dict, or `None` when it has another number of entries.
fn only_entry(obj: &serde_json::Map<String, Json>) -> Option<(&String, &Json)> {
    let mut entries = obj.iter();
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Some(entry),
        _ => None,
    }
}

/// What a `$in` list holds: Chroma wants strings, booleans or numbers, not a mix.
fn value_kind(value: &MetaValue) -> u8 {
    match value {
        MetaValue::Str(_) => 0,
        MetaValue::Bool(_) => 1,
        MetaValue::Int(_) | MetaValue::Float(_) => 2,
    }
}

// The messages follow Chroma's validation, naming the offending part as JSON.
impl Where {
    /// Parses and validates a `where` dict given as JSON text.
    ///
    /// # Errors
    /// `InvalidArgument` for text that is not JSON, or as [`Where::parse`].
    pub fn parse_json(text: &str) -> Result<Where> {
        let value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("where {text:?} is not JSON: {e}")))?;
        Where::parse(&value)
    }

    /// Parses and validates a `where` dict with Chroma's rules: one key per dict, `$and` and
    /// `$or` over lists of at least two, known operators with operands of their types.
    ///
    /// # Errors
    /// `InvalidArgument` naming the offending part.
    pub fn parse(json: &Json) -> Result<Where> {
        let Json::Object(obj) = json else {
            return Err(invalid(format!("Expected where to be a dict, got {json}")));
        };
        let Some((key, value)) = only_entry(obj) else {
            return Err(invalid(format!(
                "Expected where to have exactly one operator, got {json} (combine several \
                 conditions with $and)"
            )));
        };
        match key.as_str() {
            "$and" | "$or" => {
                let Json::Array(items) = value else {
                    return Err(invalid(format!(
                        "Expected where value for $and or $or to be a list of where \
                         expressions, got {value}"
                    )));
                };
                if items.len() < 2 {
                    return Err(invalid(format!(
                        "Expected where value for $and or $or to be a list with at least two \
                         where expressions, got {value}"
                    )));
                }
                let parts = items.iter().map(Where::parse).collect::<Result<Vec<_>>>()?;
                Ok(if key == "$and" {
                    Where::And(parts)
                } else {
                    Where::Or(parts)
                })
            }
            k if k.starts_with('$') => Err(invalid(format!(
                "Expected where key to be a metadata key, $and or $or, got operator {k}"
            ))),
            _ => Where::parse_condition(key, value),
        }
    }

    fn parse_condition(key: &str, value: &Json) -> Result<Where> {
        let scalar = |v: &Json, op: &str| {
            MetaValue::from_json(v).ok_or_else(|| {
                invalid(format!(
                    "Expected where operand value for '{key}' {op} to be a str, int, float or \
                     bool, got {v}"
                ))
            })
        };
        let ops = match value {
            Json::Object(ops) => ops,
            Json::Array(_) => {
                return Err(invalid(format!(
                    "Expected where value for '{key}' to be a str, int, float, bool or operator \
                     expression, got the list {value} (use {{\"$in\": [...]}})"
                )));
            }
            _ => {
                return Ok(Where::Cmp {
                    key: key.into(),
                    op: CmpOp::Eq,
                    value: scalar(value, "$eq")?,
                });
            }
        };
        let Some((op, operand)) = only_entry(ops) else {
            return Err(invalid(format!(
                "Expected operator expression to have exactly one operator, got {value}"
            )));
        };
        let cmp = |op_kind| -> Result<Where> {
            Ok(Where::Cmp {
                key: key.into(),
                op: op_kind,
                value: scalar(operand, op)?,
            })
        };
        let numeric = |op_kind| -> Result<Where> {
            match MetaValue::from_json(operand) {
                Some(v) if v.number().is_some() => Ok(Where::Cmp {
                    key: key.into(),
                    op: op_kind,
                    value: v,
                }),
                _ => Err(invalid(format!(
                    "Expected operand value to be an int or a float for operator {op}, got \
                     {operand}"
                ))),
            }
        };
        match op.as_str() {
            "$eq" => cmp(CmpOp::Eq),
            "$ne" => cmp(CmpOp::Ne),
            "$gt" => numeric(CmpOp::Gt),
            "$gte" => numeric(CmpOp::Gte),
            "$lt" => numeric(CmpOp::Lt),
            "$lte" => numeric(CmpOp::Lte),
            "$in" | "$nin" => {
                let Json::Array(items) = operand else {
                    return Err(invalid(format!(
                        "Expected operand value to be a list for operator {op}, got {operand}"
                    )));
                };
                if items.is_empty() {
                    return Err(invalid(format!(
                        "Expected where operand value to be a non-empty list, got [] for {op}"
                    )));
                }
                let values = items
                    .iter()
                    .map(|v| scalar(v, op))
                    .collect::<Result<Vec<_>>>()?;
                if values
                    .iter()
                    .any(|v| value_kind(v) != value_kind(&values[0]))
                {
                    return Err(invalid(format!(
                        "Expected where operand value to be a non-empty list, and all values \
                         to be of the same type, got {operand}"
                    )));
                }
                Ok(Where::In {
                    key: key.into(),
                    values,
                    negate: op == "$nin",
                })
            }
            other => Err(invalid(format!(
                "Expected where operator to be one of $gt, $gte, $lt, $lte, $ne, $eq, $in, \
                 $nin, got {other}"
            ))),
        }
    }

    /// The records among `live` that match.
    pub fn evaluate(&self, index: &MetadataIndex, live: &Bitset) -> Bitset {
        match self {
            Where::And(parts) => {
                let mut out = live.clone();
                for p in parts {
                    out.and(&p.evaluate(index, live));
                }
                out
            }
            Where::Or(parts) => {
                let mut out = Bitset::default();
                for p in parts {
                    out.or(&p.evaluate(index, live));
                }
                out
            }
            Where::Cmp { key, op, value } => {
                let mut out = match op {
                    CmpOp::Eq | CmpOp::Ne => index
                        .postings(key, value)
                        .map(Postings::to_bitset)
                        .unwrap_or_default(),
                    _ => {
                        let mut set = Bitset::default();
                        let n = value.number().unwrap_or(Number::Float(f64::NAN));
                        if let Some(sorted) = index.numeric.get(key) {
                            use std::ops::Bound::{Excluded, Included, Unbounded};
                            let range = match op {
                                CmpOp::Gt => (Excluded(n), Unbounded),
                                CmpOp::Gte => (Included(n), Unbounded),
                                CmpOp::Lt => (Unbounded, Excluded(n)),
                                _ => (Unbounded, Included(n)),
                            };
                            for (_, slots) in sorted.range(range) {
                                slots.union_into(&mut set);
                            }
                        }
                        set
                    }
                };
                if *op == CmpOp::Ne {
                    let mut all = live.clone();
                    all.and_not(&out);
                    out = all;
                } else {
                    out.and(live);
                }
                out
            }
            Where::In {
                key,
                values,
                negate,
            } => {
                let mut set = Bitset::default();
                for v in values {
                    if let Some(s) = index.postings(key, v) {
                        s.union_into(&mut set);
                    }
                }
                if *negate {
                    let mut all = live.clone();
                    all.and_not(&set);
                    all
                } else {
                    set.and(live);
                    set
                }
            }
        }
    }
}

impl WhereDocument {
    /// Parses and validates a `where_document` dict given as JSON text.
    ///
    /// # Errors
    /// `InvalidArgument` for text that is not JSON, or as [`WhereDocument::parse`].
    pub fn parse_json(text: &str) -> Result<WhereDocument> {
        let value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("where_document {text:?} is not JSON: {e}")))?;
        WhereDocument::parse(&value)
    }

    /// Parses and validates a `where_document` dict with Chroma's rules: one operator per
    /// dict, non-empty strings, `$and` and `$or` over lists of at least two, valid regexes.
    ///
    /// # Errors
    /// `InvalidArgument` naming the offending part.
    pub fn parse(json: &Json) -> Result<WhereDocument> {
        let Json::Object(obj) = json else {
            return Err(invalid(format!(
                "Expected where document to be a dictionary, got {json}"
            )));
        };
        let Some((op, operand)) = only_entry(obj) else {
            return Err(invalid(format!(
                "Expected where document to have exactly one operator, got {json}"
            )));
        };
        let text = || match operand {
            Json::String(s) if s.is_empty() => Err(invalid(format!(
                "Expected where document operand value for operator {op} to be a non-empty str"
            ))),
            Json::String(s) => Ok(s.clone()),
            other => Err(invalid(format!(
                "Expected where document operand value for operator {op} to be a str, got \
                 {other}"
            ))),
        };
        match op.as_str() {
            "$and" | "$or" => {
                let Json::Array(items) = operand else {
                    return Err(invalid(format!(
                        "Expected document value for $and or $or to be a list of where document \
                         expressions, got {operand}"
                    )));
                };
                if items.len() < 2 {
                    return Err(invalid(format!(
                        "Expected document value for $and or $or to be a list with at least two \
                         where document expressions, got {operand}"
                    )));
                }
                let parts = items
                    .iter()
                    .map(WhereDocument::parse)
                    .collect::<Result<Vec<_>>>()?;
                Ok(if op == "$and" {
                    WhereDocument::And(parts)
                } else {
                    WhereDocument::Or(parts)
                })
            }
            "$contains" => Ok(WhereDocument::Contains(text()?, false)),
            "$not_contains" => Ok(WhereDocument::Contains(text()?, true)),
            "$regex" | "$not_regex" => {
                let pattern = text()?;
                let re = regex::Regex::new(&pattern).map_err(|e| {
                    invalid(format!(
                        "Expected where document operand value for operator {op} to be a valid \
                         regex, got {pattern:?}: {e}"
                    ))
                })?;
                Ok(WhereDocument::Regex(re, op == "$not_regex"))
            }
            other => Err(invalid(format!(
                "Expected where document operator to be one of $contains, $not_contains, \
                 $regex, $not_regex, $and, $or, got {other}"
            ))),
        }
    }

    /// Whether a record's document (absent: `None`) matches.
    pub fn matches(&self, document: Option<&str>) -> bool {
        match self {
            WhereDocument::And(parts) => parts.iter().all(|p| p.matches(document)),
            WhereDocument::Or(parts) => parts.iter().any(|p| p.matches(document)),
            WhereDocument::Contains(s, negate) => {
                document.is_some_and(|d| d.contains(s.as_str())) != *negate
            }
            WhereDocument::Regex(re, negate) => document.is_some_and(|d| re.is_match(d)) != *negate,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn index() -> (MetadataIndex, Bitset) {
        let mut idx = MetadataIndex::default();
        let mut live = Bitset::default();
        let rows = [
            vec![
                ("dept".to_string(), MetaValue::Str("housing".into())),
                ("year".into(), MetaValue::Int(2024)),
            ],
            vec![
                ("dept".to_string(), MetaValue::Str("health".into())),
                ("year".into(), MetaValue::Float(2023.0)),
            ],
            vec![("year".to_string(), MetaValue::Int(2020))],
        ];
        for (i, r) in rows.iter().enumerate() {
            idx.insert(i as u64, r);
            live.insert(i as u64);
        }
        (idx, live)
    }

    fn eval(w: serde_json::Value) -> Vec<u64> {
        let (idx, live) = index();
        Where::parse(&w)
            .unwrap()
            .evaluate(&idx, &live)
            .iter()
            .collect()
    }

    #[test]
    fn operators() {
        assert_eq!(eval(json!({"dept": "housing"})), vec![0]);
        assert_eq!(eval(json!({"dept": {"$ne": "housing"}})), vec![1, 2]);
        assert_eq!(eval(json!({"year": {"$gte": 2023}})), vec![0, 1]);
        assert_eq!(eval(json!({"year": {"$lt": 2023.5}})), vec![1, 2]);
        assert_eq!(eval(json!({"year": 2023})), vec![1]);
        assert_eq!(eval(json!({"dept": {"$in": ["health", "x"]}})), vec![1]);
        assert_eq!(eval(json!({"dept": {"$nin": ["health"]}})), vec![0, 2]);
        assert_eq!(
            eval(json!({"$or": [{"dept": "health"}, {"year": 2020}]})),
            vec![1, 2]
        );
        assert_eq!(
            eval(json!({"$and": [{"dept": {"$ne": "x"}}, {"year": {"$gt": 2021}}]})),
            vec![0, 1]
        );
    }

    #[test]
    fn numbers_are_equal_across_int_float_and_signed_zero() {
        let mut idx = MetadataIndex::default();
        let mut live = Bitset::default();
        let rows = [
            MetaValue::Int(0),
            MetaValue::Float(-0.0),
            MetaValue::Float(2.0),
            MetaValue::Str("0".into()),
            MetaValue::Bool(false),
        ];
        for (i, v) in rows.iter().enumerate() {
            idx.insert(i as u64, &[("v".to_string(), v.clone())]);
            live.insert(i as u64);
        }
        fn eval(idx: &MetadataIndex, live: &Bitset, w: serde_json::Value) -> Vec<u64> {
            Where::parse(&w)
                .unwrap()
                .evaluate(idx, live)
                .iter()
                .collect()
        }
        assert_eq!(eval(&idx, &live, json!({"v": 0})), vec![0, 1]);
        assert_eq!(eval(&idx, &live, json!({"v": -0.0})), vec![0, 1]);
        assert_eq!(eval(&idx, &live, json!({"v": {"$lte": -0.0}})), vec![0, 1]);
        assert_eq!(
            eval(&idx, &live, json!({"v": {"$in": [2, -0.0]}})),
            vec![0, 1, 2]
        );
        assert_eq!(eval(&idx, &live, json!({"v": {"$in": ["0"]}})), vec![3]);
        assert_eq!(
            eval(&idx, &live, json!({"v": {"$ne": 2.0}})),
            vec![0, 1, 3, 4]
        );
        assert_eq!(eval(&idx, &live, json!({"v": false})), vec![4]);
        idx.remove(1, &[("v".to_string(), MetaValue::Float(-0.0))]);
        live.remove(1);
        assert_eq!(eval(&idx, &live, json!({"v": 0})), vec![0]);
    }

    #[test]
    fn postings_switch_between_list_and_bitset() {
        let mut p = Postings::default();
        p.insert(500);
        assert!(matches!(p, Postings::One(500)));
        p.remove(500);
        assert!(p.is_empty());
        for slot in [500, 3, 70, 3, 1] {
            p.insert(slot);
        }
        assert!(matches!(p, Postings::Sparse(_)));
        assert_eq!(
            p.to_bitset().iter().collect::<Vec<_>>(),
            vec![1, 3, 70, 500]
        );
        for slot in 0..64 {
            p.insert(slot);
        }
        assert!(matches!(p, Postings::Dense(_)));
        p.remove(70);
        p.remove(1);
        let got: Vec<u64> = p.to_bitset().iter().collect();
        let want: Vec<u64> = (0..64).filter(|s| *s != 1).chain([500]).collect();
        assert_eq!(got, want);
        let mut out = Bitset::default();
        out.insert(1000);
        p.union_into(&mut out);
        assert_eq!(out.len(), want.len() + 1);
    }

    #[test]
    fn removed_records_leave_no_postings() {
        let (mut idx, mut live) = index();
        idx.remove(
            0,
            &[
                ("dept".to_string(), MetaValue::Str("housing".into())),
                ("year".into(), MetaValue::Int(2024)),
            ],
        );
        live.remove(0);
        assert!(!idx.eq["dept"].contains_key(&EqKey::Str("housing".into())));
        assert!(!idx.numeric["year"].contains_key(&Number::Int(2024)));
        let w = Where::parse(&json!({"year": {"$gte": 2000}})).unwrap();
        assert_eq!(
            w.evaluate(&idx, &live).iter().collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn malformed_filters_are_named() {
        for bad in [
            json!("dept"),
            json!([1]),
            json!({}),
            json!({"dept": "a", "year": 1}),
            json!({"$and": [{"dept": "a"}]}),
            json!({"$and": {"dept": "a"}}),
            json!({"$or": []}),
            json!({"$nor": [{"a": 1}, {"b": 2}]}),
            json!({"a": {"$gt": "x"}}),
            json!({"a": {"$gt": true}}),
            json!({"a": {"$gt": 1, "$lt": 3}}),
            json!({"a": {"$foo": 1}}),
            json!({"a": [1, 2]}),
            json!({"a": null}),
            json!({"a": {"$in": []}}),
            json!({"a": {"$in": 2000}}),
            json!({"a": {"$in": [2000, "x"]}}),
            json!({"a": {"$in": [true, 1]}}),
            json!({"a": {"$eq": [1]}}),
            json!({"a": {"$ne": {"b": 1}}}),
        ] {
            assert!(
                matches!(Where::parse(&bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
        for good in [
            json!({"a": {"$in": [1, 2.5]}}),
            json!({"a": {"$nin": ["x", "y"]}}),
            json!({"$or": [{"a": true}, {"b": {"$lte": -1}}]}),
        ] {
            assert!(Where::parse(&good).is_ok(), "{good}");
        }
        for bad in [
            json!("text"),
            json!({"$contains": 1}),
            json!({"$contains": ""}),
            json!({"$foo": "x"}),
            json!({"$contains": "a", "$regex": "b"}),
            json!({"$and": [{"$contains": "a"}]}),
            json!({"$or": "x"}),
            json!({"$regex": "("}),
        ] {
            assert!(
                matches!(WhereDocument::parse(&bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
        let d =
            WhereDocument::parse(&json!({"$and": [{"$contains": "hou"}, {"$not_regex": "^x"}]}))
                .unwrap();
        assert!(d.matches(Some("housing")));
        assert!(!d.matches(None));
    }

    #[test]
    fn numbers_order_exactly_across_integers_and_floats() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let two53 = 1i64 << 53;
        let cases = [
            (Number::Int(two53), Number::Int(two53 + 1), Less),
            (Number::Int(two53), Number::of_float(two53 as f64), Equal),
            (
                Number::Int(two53 + 1),
                Number::of_float(two53 as f64),
                Greater,
            ),
            (Number::Int(3), Number::of_float(3.5), Less),
            (Number::Int(4), Number::of_float(3.5), Greater),
            (Number::Int(-3), Number::of_float(-3.5), Greater),
            (Number::Int(-4), Number::of_float(-3.5), Less),
            (Number::Int(i64::MAX), Number::of_float(9.3e18), Less),
            (Number::Int(i64::MIN), Number::of_float(-1e19), Greater),
            (Number::Int(i64::MIN), Number::of_float(-I64_END), Equal),
            (Number::Int(0), Number::of_float(-0.0), Equal),
            (Number::of_float(0.5), Number::of_float(0.75), Less),
            (Number::of_float(1e300), Number::Int(i64::MAX), Greater),
        ];
        for (a, b, expected) in cases {
            assert_eq!(a.cmp(&b), expected, "{a:?} vs {b:?}");
            assert_eq!(b.cmp(&a), expected.reverse(), "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn integers_past_two_to_the_53_are_filtered_exactly() {
        let base = 1i64 << 53;
        let mut idx = MetadataIndex::default();
        let mut live = Bitset::default();
        for i in 0..4u64 {
            idx.insert(i, &[("ts".to_string(), MetaValue::Int(base + i as i64))]);
            live.insert(i);
        }
        let matching = |w: serde_json::Value| -> Vec<u64> {
            Where::parse(&w)
                .unwrap()
                .evaluate(&idx, &live)
                .iter()
                .collect()
        };
        assert_eq!(matching(json!({"ts": base + 1})), vec![1]);
        assert_eq!(matching(json!({"ts": {"$gt": base + 1}})), vec![2, 3]);
        assert_eq!(matching(json!({"ts": {"$lte": base + 2}})), vec![0, 1, 2]);
        assert_eq!(
            matching(json!({"ts": {"$in": [base, base + 3]}})),
            vec![0, 3]
        );
        assert_eq!(matching(json!({"ts": {"$ne": base}})), vec![1, 2, 3]);
    }
}

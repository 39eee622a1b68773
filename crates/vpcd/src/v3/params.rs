//! An API 3.0 request's action parameters as one tree, whether they came as
//! a JSON body or as flattened form pairs (`Filters.0.Values.1=x`), read
//! through typed getters that name the field by its path.
//!
//! Every getter records the path it read. After an action has parsed its
//! request, [`Params::finish`] refuses whatever it did not read
//! (`UnknownParameter`), so the list of fields an action takes is its
//! parser, written once. A field 3.0 documents but vpcd does not carry out
//! is read and refused by the action (`UnsupportedOperation`), never left
//! unread.
//!
//! Types follow the wire: a JSON body must give a number for an integer
//! field and `true`/`false` for a boolean one; the form styles carry only
//! text, so there the text is parsed. `null` and `""` count as absent, as
//! the SDKs send them for "not given".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{ApiError, ApiResult, ErrorCode};

/// Where the tree came from, which decides how scalars are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Json,
    Form,
}

/// The action parameters of one request.
#[derive(Debug)]
pub(crate) struct Params {
    root: Map<String, Value>,
    source: Source,
    /// Paths read so far.
    read: Mutex<BTreeSet<String>>,
}

impl Params {
    /// A JSON body: an object, with no key given twice at any depth.
    pub(crate) fn from_json(body: &[u8]) -> ApiResult<Params> {
        if body.iter().all(u8::is_ascii_whitespace) {
            // The SDK sends `{}` for no parameters; an empty body means the same.
            return Ok(Params::new(Map::new(), Source::Json));
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let value = Strict
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| {
                ApiError::wire(
                    ErrorCode::InvalidRequest,
                    "request body",
                    format!("not a JSON object: {e}"),
                )
            })?;
        match value {
            Value::Object(root) => Ok(Params::new(root, Source::Json)),
            _ => Err(ApiError::wire(
                ErrorCode::InvalidRequest,
                "request body",
                "must be a JSON object of the action's parameters",
            )),
        }
    }

    /// Decoded form pairs (the common parameters already taken out):
    /// `A.B=x` is field `B` of object `A`, `A.0=x` the first element of list
    /// `A`. `_` in a name reads as `.`, since the form signature makes no
    /// difference between them. Repeats, gaps in list indexes and a name
    /// used both as a value and as a container are refused.
    pub(crate) fn from_form(pairs: &[(String, String)]) -> ApiResult<Params> {
        let mut root = Node::Obj(BTreeMap::new());
        for (key, value) in pairs {
            let key = key.replace('_', ".");
            let segments: Vec<&str> = key.split('.').collect();
            if segments.iter().any(|s| s.is_empty()) || index_of(segments[0]).is_some() {
                return Err(malformed(&key, "not a parameter name"));
            }
            root.insert(&key, &segments, value)?;
        }
        match root.into_value("")? {
            Value::Object(root) => Ok(Params::new(root, Source::Form)),
            _ => Err(malformed("(parameters)", "expected named parameters")),
        }
    }

    fn new(root: Map<String, Value>, source: Source) -> Params {
        Params {
            root,
            source,
            read: Mutex::new(BTreeSet::new()),
        }
    }

    pub(crate) fn root(&self) -> Obj<'_> {
        Obj {
            p: self,
            path: String::new(),
            map: &self.root,
        }
    }

    /// Refuse the first field no getter read.
    pub(crate) fn finish(&self) -> ApiResult<()> {
        let read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        unread_in_map(&read, "", &self.root).map_or(Ok(()), |path| {
            Err(ApiError::wire(
                ErrorCode::UnknownParameter,
                &path,
                "this action has no such parameter; see docs/api3.md",
            ))
        })
    }

    fn mark_tree(&self, path: &str, v: &Value) {
        self.mark(path);
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| self.mark_tree(&join(path, k), x)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, x)| self.mark_tree(&join(path, &i.to_string()), x)),
            _ => {}
        }
    }

    fn mark(&self, path: &str) {
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_owned());
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The first unread path under an object (depth first, in key order).
fn unread_in_map(read: &BTreeSet<String>, path: &str, map: &Map<String, Value>) -> Option<String> {
    map.iter()
        .find_map(|(k, v)| unread(read, &join(path, k), v))
}

fn unread(read: &BTreeSet<String>, path: &str, v: &Value) -> Option<String> {
    if !read.contains(path) {
        // An absent value never needs reading.
        return (!is_absent(v)).then(|| path.to_owned());
    }
    match v {
        Value::Object(m) => unread_in_map(read, path, m),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| unread(read, &join(path, &i.to_string()), item)),
        _ => None,
    }
}

fn is_absent(v: &Value) -> bool {
    matches!(v, Value::Null) || v.as_str() == Some("")
}

fn malformed(path: &str, why: impl fmt::Display) -> ApiError {
    ApiError::wire(ErrorCode::MalformedParameter, path, why)
}

/// The value of `path` is refused (`InvalidParameterValue` in 3.0).
pub(crate) fn invalid(path: &str, why: impl fmt::Display) -> ApiError {
    ApiError::wire(ErrorCode::InvalidParameter, path, why)
}

/// An object of the request, and where it sits.
#[derive(Clone)]
pub(crate) struct Obj<'a> {
    p: &'a Params,
    path: String,
    map: &'a Map<String, Value>,
}

/// A present field: its path and value.
pub(crate) struct Field<'a> {
    p: &'a Params,
    pub(crate) path: String,
    pub(crate) value: &'a Value,
}

impl<'a> Obj<'a> {
    /// The path of field `key` of this object.
    pub(crate) fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The field, marked read; `None` when absent (missing, `null` or `""`).
    pub(crate) fn field(&self, key: &str) -> Option<Field<'a>> {
        let path = self.path(key);
        self.p.mark(&path);
        let value = self.map.get(key).filter(|v| !is_absent(v))?;
        Some(Field {
            p: self.p,
            path,
            value,
        })
    }

    /// Whether the field is given, marking it and everything inside it
    /// read: for a field that is refused whole, whatever it holds.
    pub(crate) fn given(&self, key: &str) -> Option<String> {
        let f = self.field(key)?;
        self.p.mark_tree(&f.path, f.value);
        Some(f.path)
    }

    /// A field every request of the action must give.
    pub(crate) fn required(&self, key: &str) -> ApiResult<Field<'a>> {
        self.field(key)
            .ok_or_else(|| ApiError::missing(&self.path(key)))
    }

    pub(crate) fn str(&self, key: &str) -> ApiResult<Option<&'a str>> {
        self.field(key).map(|f| f.str()).transpose()
    }

    pub(crate) fn req_str(&self, key: &str) -> ApiResult<&'a str> {
        self.required(key)?.str()
    }

    /// An integer field within `range`.
    pub(crate) fn int(&self, key: &str, range: RangeInclusive<i64>) -> ApiResult<Option<i64>> {
        self.field(key).map(|f| f.int(&range)).transpose()
    }

    /// A string field that holds an integer (3.0 types some counts as
    /// strings); a JSON number is taken too, since callers send both.
    pub(crate) fn int_text(&self, key: &str, range: RangeInclusive<i64>) -> ApiResult<Option<i64>> {
        self.field(key)
            .map(|f| match f.value {
                Value::Number(_) => f.int(&range),
                _ => f.int_in_text(&range),
            })
            .transpose()
    }

    pub(crate) fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        self.field(key).map(|f| f.bool()).transpose()
    }

    /// An object field.
    pub(crate) fn obj(&self, key: &str) -> ApiResult<Option<Obj<'a>>> {
        self.field(key).map(|f| f.obj()).transpose()
    }

    /// A list field of at most `max` elements.
    pub(crate) fn list(&self, key: &str, max: usize) -> ApiResult<Option<Vec<Field<'a>>>> {
        self.field(key).map(|f| f.list(max)).transpose()
    }

    /// A list of strings of at most `max` elements.
    pub(crate) fn strs(&self, key: &str, max: usize) -> ApiResult<Vec<(String, &'a str)>> {
        let Some(items) = self.list(key, max)? else {
            return Ok(Vec::new());
        };
        items
            .into_iter()
            .map(|f| f.str().map(|s| (f.path.clone(), s)))
            .collect()
    }
}

impl<'a> Field<'a> {
    fn type_error(&self, expected: &str) -> ApiError {
        malformed(&self.path, format!("must be {expected}"))
    }

    pub(crate) fn str(&self) -> ApiResult<&'a str> {
        self.value
            .as_str()
            .ok_or_else(|| self.type_error("a string"))
    }

    fn int(&self, range: &RangeInclusive<i64>) -> ApiResult<i64> {
        let n = match (self.value, self.p.source) {
            (Value::Number(n), _) => number(n),
            (Value::String(s), Source::Form) => parse_int(s),
            _ => return Err(self.type_error("an integer")),
        };
        in_range(&self.path, n, range)
    }

    fn int_in_text(&self, range: &RangeInclusive<i64>) -> ApiResult<i64> {
        let text = self.str()?;
        in_range(&self.path, parse_int(text), range)
    }

    fn bool(&self) -> ApiResult<bool> {
        match (self.value, self.p.source) {
            (Value::Bool(b), _) => Ok(*b),
            (Value::String(s), Source::Form) => {
                parse_bool(s).ok_or_else(|| malformed(&self.path, "must be true or false"))
            }
            _ => Err(self.type_error("true or false")),
        }
    }

    /// A string that holds `true` or `false` (3.0 types some flags as strings).
    pub(crate) fn bool_text(&self) -> ApiResult<bool> {
        parse_bool(self.str()?).ok_or_else(|| invalid(&self.path, "must be true or false"))
    }

    pub(crate) fn obj(&self) -> ApiResult<Obj<'a>> {
        match self.value {
            Value::Object(map) => Ok(Obj {
                p: self.p,
                path: self.path.clone(),
                map,
            }),
            _ => Err(self.type_error("an object")),
        }
    }

    fn list(&self, max: usize) -> ApiResult<Vec<Field<'a>>> {
        let Value::Array(items) = self.value else {
            return Err(self.type_error("a list"));
        };
        if items.len() > max {
            return Err(ApiError::wire(
                ErrorCode::InvalidParameter,
                &self.path,
                format!("holds at most {max} elements (got {})", items.len()),
            ));
        }
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let path = join(&self.path, &i.to_string());
                self.p.mark(&path);
                Field {
                    p: self.p,
                    path,
                    value,
                }
            })
            .collect())
    }
}

/// A JSON number as an integer, `None` when it has a fraction or is too big.
fn number(n: &Number) -> Option<i64> {
    n.as_i64()
}

fn in_range(path: &str, n: Option<i64>, range: &RangeInclusive<i64>) -> ApiResult<i64> {
    let n = n.ok_or_else(|| malformed(path, "must be an integer"))?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(invalid(
            path,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

/// A plain decimal integer: optional '-', digits only (no '+' or spaces,
/// which `str::parse` would partly accept). `None` also when it does not
/// fit in an i64; leading zeros are taken, as v2 takes them.
fn parse_int(v: &str) -> Option<i64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// `true`/`false` in any case (Python's form encoding writes `True`).
pub(super) fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The form tree while it is built.
enum Node {
    Leaf(String),
    Obj(BTreeMap<String, Node>),
    List(BTreeMap<u32, Node>),
}

fn index_of(segment: &str) -> Option<u32> {
    (segment.bytes().all(|b| b.is_ascii_digit()) && segment.len() <= 9)
        .then(|| segment.parse().ok())
        .flatten()
}

impl Node {
    fn insert(&mut self, key: &str, segments: &[&str], value: &str) -> ApiResult<()> {
        let Some((head, rest)) = segments.split_first() else {
            return Err(malformed(key, "is given more than once"));
        };
        let index = index_of(head);
        // A container starts as an empty object; its first child decides
        // whether it is a list.
        if matches!((&*self, index), (Node::Obj(m), Some(_)) if m.is_empty()) {
            *self = Node::List(BTreeMap::new());
        }
        match (self, index) {
            (Node::Obj(m), None) => insert_child(m.entry((*head).to_owned()), key, rest, value),
            (Node::List(m), Some(i)) => insert_child(m.entry(i), key, rest, value),
            _ => Err(malformed(
                key,
                "mixes list indexes and field names at one level",
            )),
        }
    }

    fn into_value(self, path: &str) -> ApiResult<Value> {
        Ok(match self {
            Node::Leaf(s) => Value::String(s),
            Node::Obj(m) => Value::Object(
                m.into_iter()
                    .map(|(k, n)| {
                        let p = join(path, &k);
                        n.into_value(&p).map(|v| (k, v))
                    })
                    .collect::<ApiResult<Map<String, Value>>>()?,
            ),
            Node::List(m) => {
                let mut items = Vec::with_capacity(m.len());
                for (expected, (i, n)) in m.into_iter().enumerate() {
                    let p = join(path, &i.to_string());
                    if i as usize != expected {
                        return Err(malformed(
                            &p,
                            format!(
                                "list indexes must start at 0 and have no gaps (expected {})",
                                join(path, &expected.to_string())
                            ),
                        ));
                    }
                    items.push(n.into_value(&p)?);
                }
                Value::Array(items)
            }
        })
    }
}

fn insert_child<K: Ord>(
    entry: std::collections::btree_map::Entry<'_, K, Node>,
    key: &str,
    rest: &[&str],
    value: &str,
) -> ApiResult<()> {
    use std::collections::btree_map::Entry;
    match (entry, rest.is_empty()) {
        (Entry::Vacant(v), true) => {
            v.insert(Node::Leaf(value.to_owned()));
            Ok(())
        }
        (Entry::Vacant(v), false) => v
            .insert(Node::Obj(BTreeMap::new()))
            .insert(key, rest, value),
        (Entry::Occupied(_), true) => Err(malformed(key, "is given more than once")),
        (Entry::Occupied(mut o), false) => match o.get_mut() {
            Node::Leaf(_) => Err(malformed(key, "is both a value and a container")),
            node => node.insert(key, rest, value),
        },
    }
}

/// serde_json's `Value`, except that a key given twice in one object is an
/// error instead of the last one silently winning.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    // No `visit_string`: serde's default hands it to `visit_str`, and
    // serde_json never calls it (a string is borrowed or copied).
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "key {key:?} is given more than once"
                )));
            }
            let value = map.next_value_seed(Strict)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> ApiResult<Params> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::from_form(&pairs)
    }

    fn wire(e: ApiError) -> (ErrorCode, String) {
        (
            e.code,
            e.param
                .map(|p| p.v3_name().into_owned())
                .unwrap_or_default(),
        )
    }

    /// The code, the parameter and the message of a refusal.
    fn refusal(e: ApiError) -> (ErrorCode, String, String) {
        let why = e.why.render(crate::error::Field::v3_name);
        let (code, param) = wire(e);
        (code, param, why)
    }

    #[test]
    fn flattened_form_builds_the_tree() {
        let p = form(&[
            ("Filters.0.Name", "vpc-id"),
            ("Filters.0.Values.1", "b"),
            ("Filters_0_Values_0", "a"),
            ("Limit", "5"),
            ("IKEOptionsSpecification.DhGroupName", "GROUP2"),
        ])
        .unwrap();
        let o = p.root();
        let f = o.list("Filters", 10).unwrap().unwrap();
        let f0 = f[0].obj().unwrap();
        assert_eq!(f0.req_str("Name").unwrap(), "vpc-id");
        let values: Vec<&str> = f0
            .strs("Values", 5)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(values, ["a", "b"]);
        assert_eq!(o.int("Limit", 1..=100).unwrap(), Some(5));
        let ike = o.obj("IKEOptionsSpecification").unwrap().unwrap();
        assert_eq!(ike.str("DhGroupName").unwrap(), Some("GROUP2"));
        p.finish().unwrap();
    }

    #[test]
    fn malformed_forms_are_refused_naming_the_key() {
        for (pairs, key) in [
            (vec![("A", "1"), ("A", "2")], "A"),
            (vec![("A.0", "1"), ("A.2", "2")], "A.2"),
            (vec![("A", "1"), ("A.B", "2")], "A.B"),
            (vec![("A.0", "1"), ("A.B", "2")], "A.B"),
            (vec![("0", "1")], "0"),
            (vec![("A..B", "1")], "A..B"),
        ] {
            let e = form(&pairs).unwrap_err();
            assert_eq!(
                wire(e),
                (ErrorCode::MalformedParameter, key.to_owned()),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn unread_fields_are_unknown_at_any_depth() {
        let p =
            Params::from_json(br#"{"A": {"B": 1, "C": [{"D": 2}]}, "E": null, "F": ""}"#).unwrap();
        let a = p.root().obj("A").unwrap().unwrap();
        a.int("B", 0..=5).unwrap();
        let e = p.finish().unwrap_err();
        assert_eq!(wire(e), (ErrorCode::UnknownParameter, "A.C".to_owned()));
        let c = a.list("C", 5).unwrap().unwrap();
        assert_eq!(
            p.finish().map_err(wire),
            Err((ErrorCode::UnknownParameter, "A.C.0.D".to_owned()))
        );
        c[0].obj().unwrap().given("D");
        // Absent values (null, "") need no reading.
        p.finish().unwrap();
    }

    #[test]
    fn json_types_are_strict_and_form_text_is_parsed() {
        let p = Params::from_json(br#"{"N": "5", "B": "true", "L": 1.5}"#).unwrap();
        let o = p.root();
        assert_eq!(
            wire(o.int("N", 0..=9).unwrap_err()).0,
            ErrorCode::MalformedParameter
        );
        assert_eq!(
            wire(o.bool("B").unwrap_err()).0,
            ErrorCode::MalformedParameter
        );
        assert_eq!(
            wire(o.int("L", 0..=9).unwrap_err()).0,
            ErrorCode::MalformedParameter
        );
        assert_eq!(o.int_text("N", 0..=9).unwrap(), Some(5));
        let p = form(&[("N", "5"), ("B", "True"), ("X", "12")]).unwrap();
        let o = p.root();
        assert_eq!(o.int("N", 0..=9).unwrap(), Some(5));
        assert_eq!(o.bool("B").unwrap(), Some(true));
        assert_eq!(
            wire(o.int("X", 0..=9).unwrap_err()).0,
            ErrorCode::InvalidParameter
        );
    }

    #[test]
    fn json_bodies_must_be_objects_without_repeated_keys() {
        for body in [
            &b"[1]"[..],
            b"{\"a\":1,\"a\":2}",
            b"{\"a\":{\"b\":1,\"b\":1}}",
            b"{",
            b"{} x",
        ] {
            let e = Params::from_json(body).unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::InvalidRequest,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(Params::from_json(b"").is_ok());
        assert!(Params::from_json(b" {} ").is_ok());
    }

    /// A field the action refuses whole (`given`) is read with everything
    /// inside it, so the caller hears the action's reason for that field,
    /// not `UnknownParameter` for something it holds.
    #[test]
    fn a_field_given_whole_is_read_with_all_it_holds() {
        let p = Params::from_json(br#"{"X": {"A": 1, "B": [2, {"C": 3}]}, "Y": 4}"#).unwrap();
        assert_eq!(p.root().given("X"), Some("X".to_owned()));
        assert_eq!(
            p.finish().map_err(wire),
            Err((ErrorCode::UnknownParameter, "Y".to_owned()))
        );
        assert_eq!(p.root().given("Y"), Some("Y".to_owned()));
        p.finish().unwrap();
    }

    /// 3.0 types some counts as strings (DescribeVpcs' `Limit`); a JSON
    /// number is taken there too, and range-checked the same way.
    #[test]
    fn a_count_typed_as_text_takes_a_json_number() {
        let p = Params::from_json(br#"{"N": 7, "T": "7", "M": 12}"#).unwrap();
        let o = p.root();
        assert_eq!(o.int_text("N", 0..=9), Ok(Some(7)));
        assert_eq!(o.int_text("T", 0..=9), Ok(Some(7)));
        assert_eq!(
            refusal(o.int_text("M", 0..=9).unwrap_err()),
            (
                ErrorCode::InvalidParameter,
                "M".to_owned(),
                "must be between 0 and 9".to_owned()
            )
        );
    }

    /// JSON scalars keep their value: `true`/`false` and negative numbers
    /// (neither counts as absent).
    #[test]
    fn json_booleans_and_negative_numbers_are_read_back() {
        let p = Params::from_json(br#"{"T": true, "F": false, "N": -5}"#).unwrap();
        let o = p.root();
        assert_eq!(o.bool("T"), Ok(Some(true)));
        assert_eq!(o.bool("F"), Ok(Some(false)));
        assert_eq!(o.int("N", -9..=0), Ok(Some(-5)));
        p.finish().unwrap();
    }

    /// The form styles carry booleans as text, in any case; anything else
    /// is refused naming the field.
    #[test]
    fn form_booleans_are_true_or_false_text() {
        let p = form(&[("T", "TRUE"), ("F", "false"), ("X", "1")]).unwrap();
        let o = p.root();
        assert_eq!(o.bool("T"), Ok(Some(true)));
        assert_eq!(o.bool("F"), Ok(Some(false)));
        assert_eq!(
            refusal(o.bool("X").unwrap_err()),
            (
                ErrorCode::MalformedParameter,
                "X".to_owned(),
                "must be true or false".to_owned()
            )
        );
    }

    /// 3.0 types some flags as strings (CreateVpc's `EnableMulticast`):
    /// `"true"`/`"false"` in any case, in a JSON body as in a form;
    /// other text is an invalid value, and a non-string a malformed one.
    #[test]
    fn a_flag_typed_as_text_is_true_or_false() {
        let p =
            Params::from_json(br#"{"T": "True", "F": "false", "X": "yes", "B": true}"#).unwrap();
        let o = p.root();
        let flag = |key| o.required(key).and_then(|f| f.bool_text());
        assert_eq!(flag("T"), Ok(true));
        assert_eq!(flag("F"), Ok(false));
        assert_eq!(
            refusal(flag("X").unwrap_err()),
            (
                ErrorCode::InvalidParameter,
                "X".to_owned(),
                "must be true or false".to_owned()
            )
        );
        assert_eq!(
            refusal(flag("B").unwrap_err()),
            (
                ErrorCode::MalformedParameter,
                "B".to_owned(),
                "must be a string".to_owned()
            )
        );
        let p = form(&[("T", "TRUE"), ("F", "False")]).unwrap();
        let o = p.root();
        assert_eq!(o.required("T").and_then(|f| f.bool_text()), Ok(true));
        assert_eq!(o.required("F").and_then(|f| f.bool_text()), Ok(false));
    }

    /// A list may hold exactly its maximum; one more is refused naming the
    /// list and both counts.
    #[test]
    fn a_list_holds_up_to_its_maximum() {
        let p = Params::from_json(br#"{"L": ["a", "b", "c"]}"#).unwrap();
        let o = p.root();
        assert_eq!(
            o.strs("L", 3).unwrap(),
            [
                ("L.0".to_owned(), "a"),
                ("L.1".to_owned(), "b"),
                ("L.2".to_owned(), "c")
            ]
        );
        assert_eq!(
            refusal(o.strs("L", 2).unwrap_err()),
            (
                ErrorCode::InvalidParameter,
                "L".to_owned(),
                "holds at most 2 elements (got 3)".to_owned()
            )
        );
    }

    /// Form integers are plain decimals: every i64, no '+', nothing past
    /// an i64 (refused as not an integer, naming the field).
    #[test]
    fn form_integers_are_plain_decimals_over_all_of_i64() {
        let p = form(&[
            ("Max", "9223372036854775807"),
            ("Min", "-9223372036854775808"),
            ("Plus", "+5"),
            ("Over", "9223372036854775808"),
        ])
        .unwrap();
        let o = p.root();
        assert_eq!(o.int("Max", 0..=i64::MAX), Ok(Some(i64::MAX)));
        assert_eq!(o.int("Min", i64::MIN..=0), Ok(Some(i64::MIN)));
        for key in ["Plus", "Over"] {
            assert_eq!(
                refusal(o.int(key, i64::MIN..=i64::MAX).unwrap_err()),
                (
                    ErrorCode::MalformedParameter,
                    key.to_owned(),
                    "must be an integer".to_owned()
                )
            );
        }
    }

    /// A list index has at most nine digits: a longer run of digits is a
    /// name, which no action reads, so it is refused as unknown.
    #[test]
    fn a_list_index_has_at_most_nine_digits() {
        let e = form(&[("A.999999999", "x")]).unwrap_err();
        assert_eq!(
            wire(e),
            (ErrorCode::MalformedParameter, "A.999999999".to_owned())
        );
        let p = form(&[("A.1000000000", "x")]).unwrap();
        let a = p.root().obj("A").unwrap().unwrap();
        assert_eq!(a.str("1000000000"), Ok(Some("x")));
        let p = form(&[("A.1000000000", "x")]).unwrap();
        assert_eq!(
            p.finish().map_err(wire),
            Err((ErrorCode::UnknownParameter, "A".to_owned()))
        );
    }
}

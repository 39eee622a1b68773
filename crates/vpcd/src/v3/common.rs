//! What several 3.0 resources share: unified ids, names, `Offset`/`Limit`,
//! `Filters` (AND across filters, OR across one filter's values), `Tags`,
//! and the `UnsupportedOperation` refusal.

use serde::Serialize;
use vpcd_types::id::{IdKind, UnifiedId};
use vpcd_types::IdRef;

use super::params::{invalid, Field, Obj};
use crate::error::{printable, ApiError, ApiResult, ErrorCode};
use crate::ops::select::{Keep, Select};
use crate::ops::Name;

/// A documented field or value that vpcd does not carry out.
pub(super) fn unsupported(path: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::wire(ErrorCode::UnsupportedOperation, path, why)
}

/// Most ids one Describe request may list.
pub(super) const IDS_MAX: usize = 100;
/// Most filters, and most values of one filter.
const FILTERS_MAX: usize = 10;
const VALUES_MAX: usize = 5;
/// `Limit`: default and largest.
const LIMIT_DEFAULT: i64 = 20;
const LIMIT_MAX: i64 = 100;

/// A unified id (`vpc-xxxxxxxx`). 3.0 has no numeric ids.
pub(super) fn id<K: IdKind>(f: &Field<'_>) -> ApiResult<IdRef<K>> {
    f.str()?
        .parse::<UnifiedId<K>>()
        .map(IdRef::Unified)
        .map_err(|_| {
            invalid(
                &f.path,
                format!(
                    "expected `{}-` followed by 8 lower-case letters or digits",
                    K::PREFIX
                ),
            )
        })
}

pub(super) fn req_id<K: IdKind>(o: &Obj<'_>, key: &str) -> ApiResult<IdRef<K>> {
    id(&o.required(key)?)
}

pub(super) fn opt_id<K: IdKind>(o: &Obj<'_>, key: &str) -> ApiResult<Option<IdRef<K>>> {
    o.field(key).map(|f| id(&f)).transpose()
}

/// Ids listed in `key` (at most [`IDS_MAX`]).
pub(super) fn ids<K: IdKind>(o: &Obj<'_>, key: &str) -> ApiResult<Vec<IdRef<K>>> {
    let Some(items) = o.list(key, IDS_MAX)? else {
        return Ok(Vec::new());
    };
    items.iter().map(id).collect()
}

/// A resource name, refused with `code` (its `Invalid...Name`).
pub(super) fn name(o: &Obj<'_>, key: &str, code: ErrorCode) -> ApiResult<Option<Name>> {
    o.str(key)?
        .map(|v| Name::parse(v).map_err(|why| ApiError::wire(code, &o.path(key), why)))
        .transpose()
}

pub(super) fn req_name(o: &Obj<'_>, key: &str, code: ErrorCode) -> ApiResult<Name> {
    name(o, key, code)?.ok_or_else(|| ApiError::missing(&o.path(key)))
}

/// `Offset` and `Limit`, newest first. `as_text`: the action types them as
/// strings (DescribeVpcs does).
pub(super) fn page(o: &Obj<'_>, as_text: bool) -> ApiResult<(u32, u32)> {
    let get = |key: &str, range| {
        if as_text {
            o.int_text(key, range)
        } else {
            o.int(key, range)
        }
    };
    let offset = get("Offset", 0..=i64::from(u32::MAX))?.unwrap_or(0);
    let limit = get("Limit", 1..=LIMIT_MAX)?.unwrap_or(LIMIT_DEFAULT);
    Ok((offset as u32, limit as u32))
}

/// One filter: a name and the values any of which matches.
pub(super) struct Filter {
    /// `Filters.N.Name`, for messages.
    pub(super) path: String,
    pub(super) name: String,
    pub(super) values: Vec<String>,
}

impl Filter {
    /// Whether any value is `v`.
    pub(super) fn any_eq(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Whether any value is a substring of `v` (fuzzy name filters).
    pub(super) fn any_in(&self, v: &str) -> bool {
        self.values.iter().any(|x| v.contains(x.as_str()))
    }

    /// The one value, when the filter has exactly one (the store can then
    /// narrow by it).
    pub(super) fn single(&self) -> Option<&str> {
        match self.values.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The filter's values as unified ids; a malformed one is refused.
    pub(super) fn ids<K: IdKind>(&self) -> ApiResult<Vec<UnifiedId<K>>> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.parse::<UnifiedId<K>>().map_err(|_| {
                    invalid(
                        &self.values_path(i),
                        format!(
                            "expected `{}-` followed by 8 lower-case letters or digits",
                            K::PREFIX
                        ),
                    )
                })
            })
            .collect()
    }

    fn values_path(&self, i: usize) -> String {
        let base = self.path.strip_suffix(".Name").unwrap_or(&self.path);
        format!("{base}.Values.{i}")
    }
}

/// The `Filters` list; each name must be one of `known` (a `tag:<key>`
/// filter is known where `tag:` is).
pub(super) fn filters(o: &Obj<'_>, known: &[&str]) -> ApiResult<Vec<Filter>> {
    let Some(items) = o.list("Filters", FILTERS_MAX)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let f = item.obj()?;
        let name_path = f.path("Name");
        let name = f.req_str("Name")?;
        let is_tag = name.starts_with("tag:") && name.len() > 4 && known.contains(&"tag:");
        if !is_tag && !known.contains(&name) {
            return Err(invalid(
                &name_path,
                format!(
                    "`{}` is not a filter of this action (expected one of: {})",
                    printable(name),
                    known
                        .iter()
                        .map(|k| if *k == "tag:" { "tag:<key>" } else { k })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let values: Vec<String> = f
            .strs("Values", VALUES_MAX)?
            .into_iter()
            .map(|(_, v)| v.to_owned())
            .collect();
        if values.is_empty() {
            return Err(ApiError::missing(&f.path("Values")));
        }
        out.push(Filter {
            path: name_path,
            name: name.to_owned(),
            values,
        });
    }
    Ok(out)
}

/// `<Ids>` and `Filters` exclude each other.
pub(super) fn ids_or_filters(ids_key: &str, ids: usize, filters: &[Filter]) -> ApiResult<()> {
    if ids > 0 && !filters.is_empty() {
        return Err(ApiError::wire(
            ErrorCode::ParameterConflict,
            ids_key,
            "give either this or Filters, not both",
        ));
    }
    Ok(())
}

/// One tag as the answers' `TagSet` shows it.
#[derive(Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Tag {
    pub(super) key: String,
    pub(super) value: String,
}

/// `Tags` of a create request: `[{Key, Value}]`, keys unique.
pub(super) fn tags(o: &Obj<'_>) -> ApiResult<Vec<vpcd_types::Tag>> {
    let Some(items) = o.list("Tags", 50)? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<vpcd_types::Tag> = Vec::with_capacity(items.len());
    for item in items {
        let t = item.obj()?;
        let key = t.req_str("Key")?;
        if out.iter().any(|seen| seen.key == key) {
            return Err(invalid(&t.path("Key"), "the tag key is given twice"));
        }
        let value = t.str("Value")?.unwrap_or_default();
        let tag = vpcd_types::Tag::parse(key, value).map_err(|why| {
            let at = if why.contains("key") { "Key" } else { "Value" };
            invalid(&t.path(at), why)
        })?;
        out.push(tag);
    }
    Ok(out)
}

/// `Tags` of a resource vpcd keeps no tags for (VPCs and gateways; only
/// connections store theirs): an empty list is taken, tags are refused.
pub(super) fn no_tags(o: &Obj<'_>) -> ApiResult<()> {
    if !tags(o)?.is_empty() {
        return Err(unsupported(
            &o.path("Tags"),
            "vpcd stores tags for VPN connections only",
        ));
    }
    Ok(())
}

/// A stored resource's tags as `TagSet` shows them.
pub(super) fn tag_set(tags: &[vpcd_types::Tag]) -> Vec<Tag> {
    tags.iter()
        .map(|t| Tag {
            key: t.key.clone(),
            value: t.value.clone(),
        })
        .collect()
}

/// Whether a resource's tags pass the `tag-key` and `tag:<key>` filters.
pub(super) fn tags_match(f: &Filter, tags: &[Tag]) -> bool {
    match f.name.strip_prefix("tag:") {
        Some(key) => tags.iter().any(|t| t.key == key && f.any_eq(&t.value)),
        None => tags.iter().any(|t| f.any_eq(&t.key)),
    }
}

/// Whether a resource is among `ids`, when a request lists ids.
pub(super) fn listed<K: PartialEq>(ids: &[IdRef<K>], id: &UnifiedId<K>) -> bool {
    ids.is_empty()
        || ids
            .iter()
            .any(|r| matches!(r, IdRef::Unified(u) if u == id))
}

/// The id a filter names alone (one value), for the store to narrow by.
pub(super) fn single_id<K: IdKind>(filters: &[Filter], name: &str) -> Option<IdRef<K>> {
    filters
        .iter()
        .find(|f| f.name == name)
        .and_then(Filter::single)
        .and_then(|v| v.parse().ok())
}

/// A filter whose values are ids, and the check that they are well formed.
pub(super) type IdFilter = (&'static str, fn(&Filter) -> ApiResult<()>);

/// A Describe request of 3.0: listed ids or `Filters`, and a page.
pub(super) struct Query<K> {
    pub(super) ids: Vec<IdRef<K>>,
    pub(super) filters: Vec<Filter>,
    offset: u32,
    limit: u32,
}

impl<K: IdKind + PartialEq> Query<K> {
    /// Parse `ids_key`, `Filters` (names from `known`; the id filters of
    /// `id_filters` must hold well-formed ids of their kind) and the page.
    pub(super) fn parse(
        o: &Obj<'_>,
        ids_key: &str,
        known: &[&str],
        id_filters: &[IdFilter],
        page_as_text: bool,
    ) -> ApiResult<Self> {
        let ids = ids(o, ids_key)?;
        let filters = filters(o, known)?;
        ids_or_filters(ids_key, ids.len(), &filters)?;
        for f in &filters {
            if let Some((_, check)) = id_filters.iter().find(|(n, _)| *n == f.name) {
                check(f)?;
            }
        }
        let (offset, limit) = page(o, page_as_text)?;
        Ok(Query {
            ids,
            filters,
            offset,
            limit,
        })
    }

    /// The store narrows by the one listed id, else by the id filter
    /// `id_filter`.
    pub(super) fn narrow_id(&self, id_filter: &str) -> Option<IdRef<K>> {
        match self.ids.as_slice() {
            [one] => Some(one.clone()),
            _ => single_id(&self.filters, id_filter),
        }
    }

    /// The selection: `narrow` for the store; a row must be listed (when
    /// ids are) and pass every filter, as `passes` decides one.
    pub(super) fn select<F, T: 'static>(
        self,
        narrow: F,
        id_of: fn(&T) -> &UnifiedId<K>,
        passes: fn(&Filter, &T) -> bool,
    ) -> Select<F, T>
    where
        K: 'static,
    {
        let keep = (self.ids.len() > 1 || !self.filters.is_empty()).then(|| {
            let (ids, filters) = (self.ids, self.filters);
            Box::new(move |t: &T| listed(&ids, id_of(t)) && filters.iter().all(|f| passes(f, t)))
                as Keep<T>
        });
        Select {
            narrow,
            keep,
            offset: self.offset,
            limit: self.limit,
        }
    }
}

/// An id filter's check: its values are ids of kind `K`.
pub(super) fn ids_of<K: IdKind>(f: &Filter) -> ApiResult<()> {
    f.ids::<K>().map(drop)
}

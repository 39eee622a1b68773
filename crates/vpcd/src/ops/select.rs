//! Describe requests whose filter the store cannot express in full (API
//! 3.0's `Filters`: several values per filter, fields the store does not
//! index): the store narrows by what it can, a predicate decides the rest,
//! and the page is cut from the matches.
//!
//! Without a predicate the store pages by itself. With one, every match is
//! read in chunks, so the cost grows with the narrowed set; the store
//! narrows by whatever single id a request names.

use std::future::Future;

use vpcd_store::{Order, Page};

use super::{Describe, List};
use crate::error::ApiResult;

/// Rows read per store call while a predicate filters.
const CHUNK: u32 = 500;

/// What the store cannot decide about a row.
pub(crate) type Keep<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// A Describe with a predicate: the store's filter, what else must hold,
/// and the page (newest first) to return of what matches.
pub(crate) struct Select<F, T> {
    pub(crate) narrow: F,
    /// `None`: the store's filter decides alone.
    pub(crate) keep: Option<Keep<T>>,
    pub(crate) offset: u32,
    pub(crate) limit: u32,
}

/// Run `describe` (one of the resource's Describe operations) for `sel`.
pub(crate) async fn select<F, T, Fut>(
    sel: Select<F, T>,
    describe: impl Fn(Describe<F>) -> Fut,
) -> ApiResult<List<T>>
where
    F: Clone,
    Fut: Future<Output = ApiResult<List<T>>>,
{
    let page = |offset, limit| Page {
        offset,
        limit,
        order: Order::CreateTime,
        descending: true,
    };
    let Some(keep) = sel.keep else {
        return describe(Describe {
            filter: sel.narrow,
            page: page(sel.offset, sel.limit),
        })
        .await;
    };
    let mut total: u64 = 0;
    let mut items = Vec::new();
    let mut offset = 0u32;
    loop {
        let chunk = describe(Describe {
            filter: sel.narrow.clone(),
            page: page(offset, CHUNK),
        })
        .await?;
        let read = chunk.items.len();
        for item in chunk.items {
            if !keep(&item) {
                continue;
            }
            if total >= u64::from(sel.offset) && items.len() < sel.limit as usize {
                items.push(item);
            }
            total += 1;
        }
        if read < CHUNK as usize {
            break;
        }
        offset = offset.saturating_add(CHUNK);
    }
    Ok(List { total, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of the numbers 1..=n, newest (largest) first.
    async fn numbers(n: u32, d: Describe<()>) -> ApiResult<List<u32>> {
        let all: Vec<u32> = (1..=n).rev().collect();
        let start = (d.page.offset as usize).min(all.len());
        let end = (start + d.page.limit as usize).min(all.len());
        Ok(List {
            total: u64::from(n),
            items: all[start..end].to_vec(),
        })
    }

    #[tokio::test]
    async fn pages_cut_from_the_matches_across_chunks() {
        let sel = Select {
            narrow: (),
            keep: Some(Box::new(|x: &u32| x.is_multiple_of(3)) as Keep<u32>),
            offset: 2,
            limit: 3,
        };
        let l = select(sel, |d| numbers(1201, d)).await.unwrap();
        assert_eq!(l.total, 400);
        assert_eq!(l.items, [1194, 1191, 1188]);
        let sel = Select {
            narrow: (),
            keep: None,
            offset: 1,
            limit: 2,
        };
        let l = select(sel, |d| numbers(10, d)).await.unwrap();
        assert_eq!((l.total, l.items), (10, vec![9, 8]));
    }
}

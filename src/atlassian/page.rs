//! Paged listings without holding every page: one call returns one [`Page`] and the token of
//! the next; [`Paged`] walks the pages one at a time (`while let Some(items) =
//! pages.next_page().await? { .. }`), so a 100,000-user org never sits in memory at once.
//!
//! The four pagination styles reseat meets are all turned into a [`PageToken`]:
//! admin cursor (`links.next`), Jira `startAt`/`maxResults`/`isLast` (and bare arrays, paged
//! until a short page), Confluence `start`/`limit`/`_links.next`, JSM
//! `start`/`limit`/`isLastPage`.

use crate::atlassian::error::AtlassianError;
use crate::atlassian::http::BoxFuture;
use std::fmt;

/// Where the next page starts. Opaque to callers; pass it back to the `*_page` method that
/// returned it (e.g. to resume a listing after a restart).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PageToken {
    /// An admin API cursor, taken from `links.next` and never parsed.
    Cursor(String),
    /// An offset (`startAt` on Jira, `start` on Confluence and JSM).
    Offset(u64),
}

impl PageToken {
    pub(crate) fn offset(token: Option<&PageToken>) -> u64 {
        match token {
            Some(PageToken::Offset(offset)) => *offset,
            _ => 0,
        }
    }

    pub(crate) fn cursor(token: Option<&PageToken>) -> Option<&str> {
        match token {
            Some(PageToken::Cursor(cursor)) => Some(cursor),
            _ => None,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageToken>,
}

type Fetch<'c, T> =
    Box<dyn FnMut(Option<PageToken>) -> BoxFuture<'c, Result<Page<T>, AtlassianError>> + Send + 'c>;

/// A listing walked one page at a time.
pub struct Paged<'c, T> {
    fetch: Fetch<'c, T>,
    next: Option<Option<PageToken>>,
}

impl<T> fmt::Debug for Paged<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paged").field("next", &self.next).finish()
    }
}

impl<'c, T> Paged<'c, T> {
    pub(crate) fn new<F>(start: Option<PageToken>, fetch: F) -> Self
    where
        F: FnMut(Option<PageToken>) -> BoxFuture<'c, Result<Page<T>, AtlassianError>> + Send + 'c,
    {
        Self {
            fetch: Box::new(fetch),
            next: Some(start),
        }
    }

    /// Fetches the next page; `Ok(None)` once the listing is exhausted. After an error the
    /// same page is fetched again on the next call.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, AtlassianError> {
        let Some(token) = self.next.clone() else {
            return Ok(None);
        };
        let page = (self.fetch)(token).await?;
        self.next = page.next.map(Some);
        Ok(Some(page.items))
    }

    /// The token of the page [`Paged::next_page`] fetches next (`None` when done), so a
    /// long listing can be checkpointed and resumed.
    pub fn resume_token(&self) -> Option<Option<PageToken>> {
        self.next.clone()
    }

    /// Calls `each` with every page in turn, stopping at the first error of either side.
    pub async fn for_each_page<E>(
        mut self,
        mut each: impl FnMut(Vec<T>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<AtlassianError>,
    {
        while let Some(items) = self.next_page().await? {
            each(items)?;
        }
        Ok(())
    }

    /// Collects every item. Only for listings known to be small (groups, transitions).
    pub async fn collect_all(mut self) -> Result<Vec<T>, AtlassianError> {
        let mut all = Vec::new();
        while let Some(items) = self.next_page().await? {
            all.extend(items);
        }
        Ok(all)
    }
}

/// Next offset for offset-paged APIs: `None` when the server says it was the last page or the
/// page was empty (a guard against a server that never says "last").
pub(crate) fn next_offset(start: u64, received: usize, is_last: bool) -> Option<PageToken> {
    if is_last || received == 0 {
        None
    } else {
        Some(PageToken::Offset(start + received as u64))
    }
}

/// Reads one query parameter out of a `next` link (absolute or relative).
pub(crate) fn query_param(link: &str, name: &str) -> Option<String> {
    let base = url::Url::parse("http://relative.invalid/").ok()?;
    let url = base.join(link).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn next_links_give_up_their_parameters() {
        assert_eq!(
            query_param(
                "https://api.atlassian.com/admin/v1/orgs/o/users?cursor=ab%2Bc",
                "cursor"
            )
            .as_deref(),
            Some("ab+c")
        );
        assert_eq!(
            query_param(
                "/rest/api/group/g/membersByGroupId?start=200&limit=200",
                "start"
            )
            .as_deref(),
            Some("200")
        );
        assert_eq!(query_param("/x?limit=1", "start"), None);
    }

    #[test]
    fn offsets_stop_on_last_or_empty_pages() {
        assert_eq!(next_offset(0, 50, false), Some(PageToken::Offset(50)));
        assert_eq!(next_offset(50, 50, true), None);
        assert_eq!(next_offset(50, 0, false), None);
    }
}

//! Upstream's query parameters, which updog's transport (`fetch::ResumingTransport`) adds to
//! every request.
//!
//! Upstream's `HttpQueryTransport` appends its parameters, sorted by key, to **every** HTTP
//! request: `seed` and `version` always, `target` and `migrations` during an update. Repository
//! owners count their fleet from these. They are added to `http(s)` URLs only: a `file://` URL
//! names a path, where a query means nothing.

use std::sync::{Arc, RwLock};
use url::Url;

/// The query parameters shared by a transport and its owner, who may add to them while the
/// transport is in use (upstream adds `target` and `migrations` once it has chosen an update).
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Arc<RwLock<Vec<(String, String)>>>);

impl QueryParams {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter (a key may be given more than once, as upstream).
    pub fn add(&self, key: impl Into<String>, value: impl Into<String>) {
        // A poisoned lock means a thread panicked while pushing: the list is still valid.
        let mut params = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        params.push((key.into(), value.into()));
    }

    /// The parameters, sorted by key (a stable sort, so repeated keys keep their order).
    pub fn sorted(&self) -> Vec<(String, String)> {
        let mut params = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        params.sort_by(|(a, _), (b, _)| a.cmp(b));
        params
    }

    /// `url` with the parameters appended, for `http(s)` URLs; other URLs unchanged.
    #[must_use]
    pub fn apply(&self, mut url: Url) -> Url {
        if matches!(url.scheme(), "http" | "https") {
            let params = self.sorted();
            if !params.is_empty() {
                url.query_pairs_mut().extend_pairs(params.iter());
            }
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_appended_sorted_by_key_as_upstream() {
        let params = QueryParams::new();
        params.add("version", "1.0.0");
        params.add("seed", "1487");
        let url = params.apply(
            "https://example.com/metadata/timestamp.json"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            url.as_str(),
            "https://example.com/metadata/timestamp.json?seed=1487&version=1.0.0"
        );
        params.add("migrations", "migrate_a.lz4,manifest.json");
        params.add("target", "1.1.0");
        let url = params.apply("http://example.com/targets/x.lz4".parse().unwrap());
        assert_eq!(
            url.as_str(),
            "http://example.com/targets/x.lz4?migrations=migrate_a.lz4%2Cmanifest.json&seed=1487&target=1.1.0&version=1.0.0"
        );
    }

    #[test]
    fn file_urls_are_left_alone() {
        let params = QueryParams::new();
        params.add("seed", "1");
        let url: Url = "file:///repo/metadata/timestamp.json".parse().unwrap();
        assert_eq!(params.apply(url.clone()), url);
    }

    #[test]
    fn no_parameters_no_query() {
        let url: Url = "https://example.com/a".parse().unwrap();
        assert_eq!(QueryParams::new().apply(url.clone()), url);
    }
}

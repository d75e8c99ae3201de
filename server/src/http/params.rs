//! Query-string parameters for listings, parsed strictly: an unknown
//! parameter is a 400 naming it, so a typo never silently widens a filter.

use std::collections::BTreeMap;

use modelwatch_registry::PageRequest;

use super::error::{ApiError, ApiResult};

pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn new(raw: BTreeMap<String, String>) -> Self {
        Self(raw)
    }

    pub fn string(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    pub fn parse<T: std::str::FromStr>(
        &mut self,
        name: &str,
        expected: &str,
    ) -> ApiResult<Option<T>> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("query parameter {name}={text:?} is not {expected}"))
            }),
        }
    }

    pub fn with<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&str) -> modelwatch_registry::Result<T>,
    ) -> ApiResult<Option<T>> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(text) => Ok(Some(f(&text)?)),
        }
    }

    /// A parameter holding one of an enum's public names.
    pub fn named<T>(&mut self, name: &str) -> ApiResult<Option<T>>
    where
        T: std::str::FromStr<Err = modelwatch_types::InvalidValue>,
    {
        self.with(name, |text| Ok(text.parse::<T>()?))
    }

    /// `tag.<key>=<value>` parameters, every one of which must match.
    pub fn tags(&mut self) -> Vec<(String, String)> {
        let keys: Vec<String> = self
            .0
            .keys()
            .filter(|k| k.starts_with("tag."))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                self.0
                    .remove(&k)
                    .map(|v| (k["tag.".len()..].to_string(), v))
            })
            .collect()
    }

    pub fn page(&mut self) -> ApiResult<PageRequest> {
        let limit = self.parse::<u32>("limit", "a positive whole number")?;
        let cursor = self.string("cursor");
        Ok(PageRequest::new(limit, cursor)?)
    }

    /// Fails on any parameter nobody took.
    pub fn finish(self) -> ApiResult<()> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(name) => Err(ApiError::bad_request(format!(
                "unknown query parameter {name:?}; see /api/v1/openapi.json for this route's parameters"
            ))),
        }
    }
}

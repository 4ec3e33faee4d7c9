//! Raw, order- and duplicate-preserving views of the maps in manifest.json and Release.toml.
//!
//! serde_json (and serde's derived maps) silently keep the *last* of two equal keys. Upstream
//! rejects duplicate wave seeds and duplicate migration keys, so the maps are first read as
//! a list of `(key, value)` entries in file order by a map visitor, and then checked and
//! converted by the owning module, which can name the offending key and the update it is in.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A JSON object / TOML table read as its entries, in file order, duplicates kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entries<V>(pub(crate) Vec<(String, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: Deserializer<'de>,
    {
        struct EntriesVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<M>(self, mut access: M) -> Result<Self::Value, M::Error>
            where
                M: MapAccess<'de>,
            {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0));
                while let Some(entry) = access.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_json_keys_are_all_kept_in_file_order() {
        let entries: Entries<u8> = serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert_eq!(
            entries.0,
            vec![
                ("b".to_string(), 1),
                ("a".to_string(), 2),
                ("b".to_string(), 3)
            ]
        );
    }

    #[test]
    fn a_non_map_is_a_type_error() {
        let err = serde_json::from_str::<Entries<u8>>("[1, 2]").unwrap_err();
        assert!(err.to_string().contains("expected a map"), "{err}");
    }
}

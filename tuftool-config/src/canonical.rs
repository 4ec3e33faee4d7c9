//! Signing one role with tough, and the exact bytes written for it.
//!
//! tough's `SignedRole` serialises its `HashMap`s (keys, roles, targets) in a per-process random
//! order and lists signatures in the order of another `HashMap`, so two runs with the same keys
//! and clock produce different files. Signatures cover only the canonical JSON of `signed`, so
//! this crate re-serialises every signed role with object keys sorted and signatures sorted by
//! key ID: the same inputs then give byte-identical repositories (with ed25519 keys, whose
//! signatures are deterministic), which the fixture crate relies on.

use crate::error::{self, Result};
use crate::keys::SigningKey;
use crate::role::Role;
use aws_lc_rs::rand::SystemRandom;
use serde::Serialize;
use serde_json::{Map, Value};
use snafu::ResultExt;
use std::collections::BTreeMap;
use tough::editor::signed::SignedRole;
use tough::key_source::KeySource;
use tough::schema::{KeyHolder, Root, Signed};

/// The on-disk bytes of a signed role: pretty JSON, keys sorted, signatures sorted, trailing
/// newline (as tough writes it).
pub fn file_bytes<T: Serialize + Clone>(signed: &Signed<T>, role: Role) -> Result<Vec<u8>> {
    let mut signed = signed.clone();
    signed.signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    let value = serde_json::to_value(&signed).context(error::SerializeSnafu { role })?;
    let mut bytes =
        serde_json::to_vec_pretty(&sorted(value)).context(error::SerializeSnafu { role })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Rebuilds every object with its keys in sorted order, whether or not serde_json's
/// `preserve_order` feature is on somewhere in the build.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect::<Map<String, Value>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Key sources for tough, one per distinct key ID.
pub(crate) fn key_sources(keys: &[SigningKey]) -> Vec<Box<dyn KeySource>> {
    let mut seen = std::collections::BTreeSet::new();
    keys.iter()
        .filter(|k| seen.insert(k.keyid().to_string()))
        .map(SigningKey::key_source)
        .collect()
}

/// Signs `body` with those of `keys` that `key_holder` (a root) lists for the role, through
/// tough's `SignedRole::new`, and returns the signed role with its file bytes.
pub(crate) async fn sign_role<T>(
    body: T,
    key_holder: &Root,
    keys: &[SigningKey],
    role: Role,
) -> Result<(Signed<T>, Vec<u8>)>
where
    T: tough::schema::Role + Serialize + Clone,
{
    let sources = key_sources(keys);
    let signed = SignedRole::new(
        body,
        &KeyHolder::Root(key_holder.clone()),
        &sources,
        &SystemRandom::new(),
    )
    .await
    .context(error::SignSnafu { role })?;
    let signed = signed.signed().clone();
    let bytes = file_bytes(&signed, role)?;
    Ok((signed, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_objects_come_out_sorted() {
        let v: Value = serde_json::from_str(r#"{"b":{"z":1,"a":[{"y":2,"c":3}]},"a":0}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&sorted(v)).unwrap(),
            r#"{"a":0,"b":{"a":[{"c":3,"y":2}],"z":1}}"#
        );
    }
}

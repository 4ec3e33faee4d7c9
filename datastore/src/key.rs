//! Datastore keys: dotted names (`settings.motd`) whose segments may be quoted to hold a dot
//! (`settings.kernel.sysctl."net.ipv4.ip_forward"`), exactly as upstream's `datastore::Key`.

use crate::encoding::encode_path_component;
use crate::error::{self, Result};
use snafu::ensure;
use std::fmt;
use std::hash::{Hash, Hasher};

/// The separator between key segments.
pub const KEY_SEPARATOR: char = '.';

/// The longest key name (upstream: the longest file name, 255).
pub const MAX_KEY_NAME_LENGTH: usize = 255;

/// The longest file name the datastore writes (Linux `NAME_MAX`): a segment whose encoded form is
/// longer cannot be stored, even when the key name itself is short enough.
pub const MAX_FILE_NAME_LENGTH: usize = 255;

/// Whether a key names data (any number of segments) or metadata (one segment).
#[derive(Debug, Copy, Clone, Eq, PartialEq, Hash)]
pub enum KeyType {
    Data,
    Meta,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Data => f.write_str("data"),
            KeyType::Meta => f.write_str("metadata"),
        }
    }
}

/// A checked key: its name as written (quotes included) and its segments (quotes removed).
/// Two keys are equal when their segments are, whatever quoting their names used.
#[derive(Clone, Debug)]
pub struct Key {
    name: String,
    segments: Vec<String>,
    key_type: KeyType,
}

impl Key {
    /// Parses and checks a key name: characters `a-z A-Z 0-9 _ - /`, dots between segments,
    /// double quotes around a segment that holds dots; no empty segment; at most
    /// [`MAX_KEY_NAME_LENGTH`] bytes; a metadata key has exactly one segment; every segment fits
    /// in a file name once encoded.
    pub fn new(key_type: KeyType, name: impl AsRef<str>) -> Result<Self> {
        let name = name.as_ref();
        let segments = parse_name_segments(name)?;
        check_key(key_type, name, &segments)?;
        Ok(Self {
            name: name.to_string(),
            segments,
            key_type,
        })
    }

    /// Builds a key from unquoted segments, quoting those that hold a dot:
    /// `["a", "b.c", "d"]` is `a."b.c".d`.
    pub fn from_segments<S: AsRef<str>>(key_type: KeyType, segments: &[S]) -> Result<Self> {
        let segments: Vec<String> = segments.iter().map(|s| s.as_ref().to_string()).collect();
        let name = encode_name_segments(&segments)?;
        check_key(key_type, &name, &segments)?;
        Ok(Self {
            name,
            segments,
            key_type,
        })
    }

    /// The name as given (or as built by [`Key::from_segments`]), quotes included.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The segments, unquoted.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Whether the key's first segments are `prefix`.
    pub fn starts_with_segments<S: AsRef<str>>(&self, prefix: &[S]) -> bool {
        prefix.len() <= self.segments.len()
            && self
                .segments
                .iter()
                .zip(prefix)
                .all(|(ours, theirs)| ours == theirs.as_ref())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.segments.hash(state);
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.segments.cmp(&other.segments)
    }
}

/// Characters allowed inside a segment (quoted or not); a dot is allowed only inside quotes.
fn valid_character(c: char) -> bool {
    matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '/')
}

fn parse_name_segments(name: &str) -> Result<Vec<String>> {
    let invalid = |reason: String| error::InvalidKeySnafu { name, reason }.fail();
    if name.is_empty() {
        return invalid("a key cannot be empty".into());
    }
    let mut segments = Vec::new();
    let mut segment = String::new();
    let mut in_quotes = false;
    for c in name.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if c == KEY_SEPARATOR && !in_quotes {
            if segment.is_empty() {
                return invalid("empty key segment".into());
            }
            segments.push(std::mem::take(&mut segment));
        } else if c == KEY_SEPARATOR || valid_character(c) {
            segment.push(c);
        } else {
            return invalid(format!(
                "invalid character {c:?} (allowed: a-z A-Z 0-9 _ - /, and '.' inside quotes)"
            ));
        }
    }
    if in_quotes {
        return invalid("unbalanced quotes".into());
    }
    if segment.is_empty() {
        return invalid("ends with an empty segment".into());
    }
    segments.push(segment);
    Ok(segments)
}

fn encode_name_segments(segments: &[String]) -> Result<String> {
    let mut parts = Vec::with_capacity(segments.len());
    for segment in segments {
        if let Some(c) = segment
            .chars()
            .find(|&c| c != KEY_SEPARATOR && !valid_character(c))
        {
            return error::InvalidKeySnafu {
                name: segments.join("."),
                reason: format!("segment {segment:?} contains invalid character {c:?}"),
            }
            .fail();
        }
        if segment.is_empty() {
            return error::InvalidKeySnafu {
                name: segments.join("."),
                reason: "empty key segment",
            }
            .fail();
        }
        if segment.contains(KEY_SEPARATOR) {
            parts.push(format!("\"{segment}\""));
        } else {
            parts.push(segment.clone());
        }
    }
    Ok(parts.join("."))
}

fn check_key(key_type: KeyType, name: &str, segments: &[String]) -> Result<()> {
    ensure!(
        name.len() <= MAX_KEY_NAME_LENGTH,
        error::KeyTooLongSnafu {
            name,
            length: name.len(),
            max: MAX_KEY_NAME_LENGTH,
        }
    );
    match key_type {
        KeyType::Data => ensure!(
            !segments.is_empty(),
            error::InvalidKeySnafu {
                name,
                reason: "a data key needs at least one segment",
            }
        ),
        KeyType::Meta => ensure!(
            segments.len() == 1,
            error::InvalidKeySnafu {
                name,
                reason: format!(
                    "a metadata key has exactly one segment, this one has {}",
                    segments.len()
                ),
            }
        ),
    }
    for segment in segments {
        let encoded = encode_path_component(segment);
        ensure!(
            encoded.len() <= MAX_FILE_NAME_LENGTH,
            error::SegmentTooLongSnafu {
                name,
                segment: segment.clone(),
                encoded_length: encoded.len(),
                max: MAX_FILE_NAME_LENGTH,
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn dotted_names_split_into_segments() {
        let key = Key::new(KeyType::Data, "a.b.c").unwrap();
        assert_eq!(key.segments(), ["a", "b", "c"]);
        assert_eq!(key.name(), "a.b.c");
    }

    #[test]
    fn quoted_segments_keep_their_dots() {
        let key = Key::new(
            KeyType::Data,
            r#"settings.kernel.sysctl."net.ipv4.ip_forward""#,
        )
        .unwrap();
        assert_eq!(
            key.segments(),
            ["settings", "kernel", "sysctl", "net.ipv4.ip_forward"]
        );
    }

    #[test]
    fn from_segments_quotes_segments_with_dots() {
        let key = Key::from_segments(KeyType::Data, &["a", "b.c", "d"]).unwrap();
        assert_eq!(key.name(), r#"a."b.c".d"#);
        assert_eq!(key, Key::new(KeyType::Data, r#"a."b.c".d"#).unwrap());
    }

    #[test]
    fn metadata_keys_have_one_segment() {
        assert!(Key::new(KeyType::Meta, "affected-services").is_ok());
        assert!(Key::new(KeyType::Meta, r#""a.b""#).is_ok());
        let err = Key::new(KeyType::Meta, "a.b").unwrap_err();
        assert!(err.to_string().contains("'a.b'"), "{err}");
    }

    #[test]
    fn bad_characters_are_rejected_naming_the_key() {
        for name in ["a b", "a.b!", "settings.motd\n", "ä", "a.b%2E"] {
            let err = Key::new(KeyType::Data, name).unwrap_err();
            assert!(matches!(err, Error::InvalidKey { .. }), "{name}: {err}");
            assert!(err.to_string().contains(&format!("'{name}'")), "{err}");
        }
    }

    #[test]
    fn malformed_names_are_rejected() {
        for name in ["", ".a", "a.", "a..b", r#"a."b"#, r#""""#] {
            assert!(Key::new(KeyType::Data, name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn names_longer_than_255_bytes_are_rejected() {
        assert!(Key::new(KeyType::Data, "a".repeat(255)).is_ok());
        let err = Key::new(KeyType::Data, "a".repeat(256)).unwrap_err();
        assert!(
            matches!(err, Error::KeyTooLong { length: 256, .. }),
            "{err}"
        );
    }

    #[test]
    fn segments_too_long_once_encoded_are_rejected() {
        // 100 slashes encode to 300 bytes: a file name Linux cannot hold.
        let name = format!("settings.{}", "/".repeat(100));
        let err = Key::new(KeyType::Data, &name).unwrap_err();
        assert!(
            matches!(
                err,
                Error::SegmentTooLong {
                    encoded_length: 300,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("settings."), "{err}");
    }

    #[test]
    fn equality_ignores_quoting_style() {
        assert_eq!(
            Key::new(KeyType::Data, r#""a".b"#).unwrap(),
            Key::new(KeyType::Data, "a.b").unwrap()
        );
        assert!(
            Key::new(KeyType::Data, "a.b.c")
                .unwrap()
                .starts_with_segments(&["a", "b"])
        );
    }
}

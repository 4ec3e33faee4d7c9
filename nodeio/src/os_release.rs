//! os-release (`/usr/lib/os-release`, `/etc/os-release`): the one parser every crate uses.
//!
//! The format (os-release(5)) is a shell fragment of `KEY=VALUE` assignments, one per line:
//!
//! - blank lines and lines whose first non-blank character is `#` are skipped;
//! - `KEY` is a shell variable name (`[A-Za-z_][A-Za-z0-9_]*`) directly followed by `=`;
//! - `VALUE` is one shell word: unquoted text, `'single-quoted'` text (taken literally), and `"double-quoted"` text,
//!   in which a backslash escapes `"`, `\`, `$` and `` ` `` and is kept before any other character. Outside quotes a
//!   backslash escapes the next character. Pieces may be joined (`a"b c"'d'` is `ab cd`), as in a shell;
//! - after the value, whitespace and a `#` comment may follow, nothing else;
//! - no expansion: `$X` and `` `cmd` `` are taken as they are written (the file is data, never run), as systemd
//!   reads it;
//! - a key assigned twice keeps its last value, as in a shell that sources the file.
//!
//! Anything else is refused with an error naming the file, the line number and the problem, so a damaged file
//! (`VARIANT_ID="aws-dev`, with its closing quote lost) is never read as a plausible value. Continued lines (a
//! quoted value spanning lines, a trailing backslash) are refused too: os-release files have none.

use snafu::{ResultExt, Snafu};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why an os-release file was not read.
#[derive(Debug, Snafu)]
pub enum OsReleaseError {
    #[snafu(display("Failed to read os-release file {}: {source}", path.display()))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[snafu(display("os-release file {}, line {line}: {problem}", path.display()))]
    Syntax {
        path: PathBuf,
        /// 1-based.
        line: usize,
        problem: Problem,
    },
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A line that is neither blank, a comment nor `KEY=VALUE`.
    NotAnAssignment { text: String },
    /// The text before `=` is not a variable name (`VARIANT ID`, `VARIANT_ID ` with a space, `1X`).
    BadKey { key: String },
    /// A quote opened in the value is not closed on its line.
    UnterminatedQuote { key: String, quote: char },
    /// The value ends in a backslash outside quotes (a continued line).
    TrailingBackslash { key: String },
    /// Text after the value, past unquoted whitespace (`NAME=Bottle rocket`): a shell would run it.
    TextAfterValue { key: String, text: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnAssignment { text } => write!(f, "'{text}' is not a KEY=VALUE assignment"),
            Self::BadKey { key } => write!(
                f,
                "'{key}' is not a variable name (letters, digits and '_', not starting with a digit, directly \
                 before '=')"
            ),
            Self::UnterminatedQuote { key, quote } => {
                let kind = if *quote == '"' { "double" } else { "single" };
                write!(
                    f,
                    "the value of {key} has an unterminated {kind} quote ({quote}); a value must close its quotes on \
                     its line"
                )
            }
            Self::TrailingBackslash { key } => write!(
                f,
                "the value of {key} ends in a backslash; continued lines are not supported"
            ),
            Self::TextAfterValue { key, text } => write!(
                f,
                "the value of {key} is followed by '{text}' after unquoted whitespace; quote a value that contains \
                 spaces"
            ),
        }
    }
}

/// A parsed os-release file: its assignments in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    path: PathBuf,
    entries: Vec<(String, String)>,
}

impl OsRelease {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Self, OsReleaseError> {
        let text = crate::read::read_small_text_file(path, crate::read::SMALL_FILE_LIMIT)
            .context(ReadSnafu { path })?;
        Self::parse(&text, path)
    }

    /// Parses os-release text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, OsReleaseError> {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(index, line)| {
                parse_line(line)
                    .map_err(|problem| OsReleaseError::Syntax {
                        path: path.to_owned(),
                        line: index + 1,
                        problem,
                    })
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            path: path.to_owned(),
            entries,
        })
    }

    /// The value of `key` (its last assignment), if the file assigns it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The file this was read from (or the name given to [`OsRelease::parse`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every assignment, in file order (a key assigned twice appears twice).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One line: `None` for a blank or comment line, the assignment otherwise.
fn parse_line(line: &str) -> Result<Option<(String, String)>, Problem> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let Some((key, rest)) = line.split_once('=') else {
        return Err(Problem::NotAnAssignment {
            text: line.trim_end().to_string(),
        });
    };
    if !is_variable_name(key) {
        return Err(Problem::BadKey {
            key: key.to_string(),
        });
    }
    let value = parse_value(key, rest)?;
    Ok(Some((key.to_string(), value)))
}

fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One shell word, then optional whitespace and an optional comment.
fn parse_value(key: &str, text: &str) -> Result<String, Problem> {
    let unterminated = |quote| Problem::UnterminatedQuote {
        key: key.to_string(),
        quote,
    };
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, c)) => value.push(c),
                    None => return Err(unterminated('\'')),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c @ ('"' | '\\' | '$' | '`'))) => value.push(c),
                        Some((_, c)) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err(unterminated('"')),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err(unterminated('"')),
                }
            },
            '\\' => match chars.next() {
                Some((_, c)) => value.push(c),
                None => {
                    return Err(Problem::TrailingBackslash {
                        key: key.to_string(),
                    });
                }
            },
            c if c.is_whitespace() => {
                let after = text[index..].trim();
                if after.is_empty() || after.starts_with('#') {
                    return Ok(value);
                }
                return Err(Problem::TextAfterValue {
                    key: key.to_string(),
                    text: after.to_string(),
                });
            }
            c => value.push(c),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OsRelease, OsReleaseError> {
        OsRelease::parse(text, Path::new("/usr/lib/os-release"))
    }

    fn problem(text: &str) -> (usize, Problem) {
        match parse(text).unwrap_err() {
            OsReleaseError::Syntax { line, problem, .. } => (line, problem),
            other => panic!("not a syntax error: {other}"),
        }
    }

    #[test]
    fn a_bottlerocket_os_release_parses() {
        let release = parse(
            "NAME=Bottlerocket\nID=bottlerocket\nVERSION=\"1.26.1 (aws-dev)\"\n\
             PRETTY_NAME=\"Bottlerocket OS 1.26.1 (aws-dev)\"\nVARIANT_ID=aws-dev\n\
             VERSION_ID=1.26.1\nBUILD_ID=943d9a41\n# a comment=ignored\n",
        )
        .unwrap();
        assert_eq!(release.get("VARIANT_ID"), Some("aws-dev"));
        assert_eq!(release.get("VERSION_ID"), Some("1.26.1"));
        assert_eq!(release.get("VERSION"), Some("1.26.1 (aws-dev)"));
        assert_eq!(
            release.get("PRETTY_NAME"),
            Some("Bottlerocket OS 1.26.1 (aws-dev)")
        );
        assert_eq!(release.get("a comment"), None);
        assert_eq!(release.entries().count(), 7);
        assert_eq!(release.path(), Path::new("/usr/lib/os-release"));
    }

    #[test]
    fn quoting_follows_the_shell() {
        let release = parse(concat!(
            "SINGLE='metal-dev'\n",
            "DOUBLE=\"1.0.0\"\n",
            "EMPTY=\n",
            "EMPTY_QUOTED=\"\"\n",
            "LITERAL='a \\ \"b\" $c'\n",
            "ESCAPED=\"q\\\"uote \\\\ \\$HOME \\` \\n\"\n",
            "UNQUOTED=a\\ b\\\"c\n",
            "JOINED=a\"b c\"'d'\n",
            "DOLLAR=$HOME\n",
            "HASH=a#b\n",
            "COMMENTED=value   # a comment\n",
            "  INDENTED=yes  \n",
            "\n",
            "   # an indented comment\n",
        ))
        .unwrap();
        let expected = [
            ("SINGLE", "metal-dev"),
            ("DOUBLE", "1.0.0"),
            ("EMPTY", ""),
            ("EMPTY_QUOTED", ""),
            ("LITERAL", "a \\ \"b\" $c"),
            ("ESCAPED", "q\"uote \\ $HOME ` \\n"),
            ("UNQUOTED", "a b\"c"),
            ("JOINED", "ab cd"),
            ("DOLLAR", "$HOME"),
            ("HASH", "a#b"),
            ("COMMENTED", "value"),
            ("INDENTED", "yes"),
        ];
        for (key, value) in expected {
            assert_eq!(release.get(key), Some(value), "{key}");
        }
    }

    #[test]
    fn the_last_assignment_wins() {
        let release = parse("VERSION_ID=1.0.0\nVERSION_ID=1.1.0\n").unwrap();
        assert_eq!(release.get("VERSION_ID"), Some("1.1.0"));
        assert_eq!(release.entries().count(), 2);
    }

    #[test]
    fn an_unterminated_quote_names_file_line_and_key() {
        let err = parse("NAME=Bottlerocket\nVARIANT_ID=\"aws-dev\nVERSION_ID=1.0.0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "os-release file /usr/lib/os-release, line 2: the value of VARIANT_ID has an unterminated double quote \
             (\"); a value must close its quotes on its line"
        );
        assert_eq!(
            problem("A=ok\n\nVARIANT_ID='aws-dev\n"),
            (
                3,
                Problem::UnterminatedQuote {
                    key: "VARIANT_ID".into(),
                    quote: '\''
                }
            )
        );
        // An escaped closing quote does not close.
        assert_eq!(
            problem("NAME=\"Bottle\\\"\n").1,
            Problem::UnterminatedQuote {
                key: "NAME".into(),
                quote: '"'
            }
        );
        assert_eq!(
            problem("NAME=\"Bottle\\").1,
            Problem::UnterminatedQuote {
                key: "NAME".into(),
                quote: '"'
            }
        );
    }

    #[test]
    fn other_malformed_lines_are_named() {
        for (text, expected) in [
            (
                "VARIANT_ID aws-dev",
                Problem::NotAnAssignment {
                    text: "VARIANT_ID aws-dev".into(),
                },
            ),
            (
                "VARIANT_ID =aws-dev",
                Problem::BadKey {
                    key: "VARIANT_ID ".into(),
                },
            ),
            ("=x", Problem::BadKey { key: String::new() }),
            ("1X=x", Problem::BadKey { key: "1X".into() }),
            (
                "VARIANT-ID=x",
                Problem::BadKey {
                    key: "VARIANT-ID".into(),
                },
            ),
            (
                "NAME=Bottle\\",
                Problem::TrailingBackslash { key: "NAME".into() },
            ),
            (
                "NAME=Bottle rocket",
                Problem::TextAfterValue {
                    key: "NAME".into(),
                    text: "rocket".into(),
                },
            ),
            (
                "NAME=\"Bottle\" rocket # c",
                Problem::TextAfterValue {
                    key: "NAME".into(),
                    text: "rocket # c".into(),
                },
            ),
        ] {
            assert_eq!(problem(text), (1, expected), "{text}");
        }
        let msg = parse("OK=1\nVARIANT_ID aws-dev\n").unwrap_err().to_string();
        assert_eq!(
            msg,
            "os-release file /usr/lib/os-release, line 2: 'VARIANT_ID aws-dev' is not a KEY=VALUE assignment"
        );
    }

    #[test]
    fn read_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        let msg = OsRelease::read(&path).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "Failed to read os-release file {}: No such file or directory (os error 2)",
                path.display()
            )
        );
        std::fs::write(&path, "VERSION_ID=1.2.3\n").unwrap();
        let release = OsRelease::read(&path).unwrap();
        assert_eq!(release.get("VERSION_ID"), Some("1.2.3"));
        assert_eq!(release.path(), path);
    }
}

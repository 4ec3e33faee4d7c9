//! The migrations most releases need, with upstream's names and behaviour (BR
//! `migration-helpers/src/common_migrations.rs`), plus [`RenameSettingMigration`]. Each one only
//! changes what it names and leaves everything else as it found it; messages go to stdout
//! (migrator logs a migration's stdout at debug level, its stderr at error level).

use crate::error::{self, Result};
use crate::template;
use crate::{Migration, MigrationData, Value};
use snafu::OptionExt;

// =^..^=   settings   =^..^=

/// Settings added in this release: the new version supplies their defaults, so forward does
/// nothing; backward removes them so the old version never sees keys it does not know.
pub struct AddSettingsMigration<'a>(pub &'a [&'static str]);

impl Migration for AddSettingsMigration<'_> {
    fn forward(&mut self, input: MigrationData) -> Result<MigrationData> {
        println!(
            "AddSettingsMigration({:?}) has no work to do on upgrade.",
            self.0
        );
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        for setting in self.0 {
            remove_setting(&mut input, setting);
        }
        Ok(input)
    }
}

/// Settings under prefixes added in this release (user-defined keys in a map, e.g.
/// `settings.host-containers.`): backward removes every key starting with one of them.
pub struct AddPrefixesMigration(pub Vec<&'static str>);

impl Migration for AddPrefixesMigration {
    fn forward(&mut self, input: MigrationData) -> Result<MigrationData> {
        println!(
            "AddPrefixesMigration({:?}) has no work to do on upgrade.",
            self.0
        );
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        let mut doomed: Vec<String> = input
            .data
            .keys()
            .filter(|k| self.0.iter().any(|prefix| k.starts_with(prefix)))
            .cloned()
            .collect();
        doomed.sort();
        for setting in doomed {
            remove_setting(&mut input, &setting);
        }
        Ok(input)
    }
}

/// Settings removed in this release: forward removes them (the new version would not accept
/// them); backward does nothing (the old version has its defaults).
pub struct RemoveSettingsMigration<'a>(pub &'a [&'static str]);

impl Migration for RemoveSettingsMigration<'_> {
    fn forward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        for setting in self.0 {
            remove_setting(&mut input, setting);
        }
        Ok(input)
    }

    fn backward(&mut self, input: MigrationData) -> Result<MigrationData> {
        println!(
            "RemoveSettingsMigration({:?}) has no work to do on downgrade.",
            self.0
        );
        Ok(input)
    }
}

fn remove_setting(input: &mut MigrationData, setting: &str) {
    match input.data.remove(setting) {
        Some(value) => println!("Removed {setting}, which was set to '{value}'"),
        None => println!("Found no {setting} to remove"),
    }
}

/// A setting renamed in this release (not in upstream's set): forward moves the value and its
/// metadata from `from` to `to`, backward moves them back. A data set that already holds the
/// destination is an error rather than a silent overwrite.
pub struct RenameSettingMigration {
    pub from: &'static str,
    pub to: &'static str,
}

impl RenameSettingMigration {
    fn rename(input: &mut MigrationData, from: &str, to: &str) -> Result<()> {
        if let Some(value) = input.data.remove(from) {
            if let Some(existing) = input.data.get(to) {
                return error::RenameTargetExistsSnafu {
                    from,
                    to,
                    existing: existing.clone(),
                }
                .fail();
            }
            println!("Renamed {from} to {to}");
            input.data.insert(to.to_string(), value);
        } else {
            println!("Found no {from} to rename");
        }
        if let Some(metadata) = input.metadata.remove(from) {
            input
                .metadata
                .entry(to.to_string())
                .or_default()
                .extend(metadata);
        }
        Ok(())
    }
}

impl Migration for RenameSettingMigration {
    fn forward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        Self::rename(&mut input, self.from, self.to)?;
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        Self::rename(&mut input, self.to, self.from)?;
        Ok(input)
    }
}

// =^..^=   values   =^..^=

/// A setting whose default string changed: forward replaces `old_val` by `new_val` (only if the
/// setting still holds `old_val`, i.e. the user never changed it); backward the reverse.
pub struct ReplaceStringMigration {
    pub setting: &'static str,
    pub old_val: &'static str,
    pub new_val: &'static str,
}

impl ReplaceStringMigration {
    fn replace(&self, input: &mut MigrationData, from: &str, to: &str) {
        match input.data.get_mut(self.setting) {
            Some(Value::String(current)) if current == from => {
                println!(
                    "Changed value of '{}' from '{from}' to '{to}'",
                    self.setting
                );
                *current = to.to_string();
            }
            Some(Value::String(_)) => {
                println!("'{}' is not set to '{from}', leaving alone", self.setting);
            }
            Some(other) => println!(
                "'{}' is set to non-string value '{other}'; ReplaceStringMigration only handles strings",
                self.setting
            ),
            None => println!("Found no '{}' to change", self.setting),
        }
    }
}

impl Migration for ReplaceStringMigration {
    fn forward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        self.replace(&mut input, self.old_val, self.new_val);
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        self.replace(&mut input, self.new_val, self.old_val);
        Ok(input)
    }
}

/// One list of strings to replace.
pub struct ListReplacement {
    pub setting: &'static str,
    pub old_vals: &'static [&'static str],
    pub new_vals: &'static [&'static str],
}

/// Settings holding lists of strings whose defaults changed: each list equal to `old_vals` becomes
/// `new_vals` (backward: the reverse). A list with a non-string item is an error.
pub struct ReplaceListsMigration(pub Vec<ListReplacement>);

impl ReplaceListsMigration {
    fn replace(&self, input: &mut MigrationData, forward: bool) -> Result<()> {
        for r in &self.0 {
            let (from, to) = if forward {
                (r.old_vals, r.new_vals)
            } else {
                (r.new_vals, r.old_vals)
            };
            match input.data.get_mut(r.setting) {
                Some(Value::Array(items)) => {
                    let list = string_list(items).context(error::ReplaceListContentsSnafu {
                        setting: r.setting,
                        data: items.clone(),
                    })?;
                    if list == from {
                        println!("Changed value of '{}' from {from:?} to {to:?}", r.setting);
                        *items = to.iter().map(|s| Value::from(*s)).collect();
                    } else {
                        println!("'{}' is not set to {from:?}, leaving alone", r.setting);
                    }
                }
                Some(other) => println!(
                    "'{}' is set to non-list value '{other}'; ReplaceListsMigration only handles lists",
                    r.setting
                ),
                None => println!("Found no '{}' to change", r.setting),
            }
        }
        Ok(())
    }
}

impl Migration for ReplaceListsMigration {
    fn forward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        self.replace(&mut input, true)?;
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        self.replace(&mut input, false)?;
        Ok(input)
    }
}

fn string_list(items: &[Value]) -> Option<Vec<&str>> {
    items.iter().map(Value::as_str).collect()
}

/// A setting generated from a template (its `template` metadata) whose template changed:
/// when the setting's template is the outgoing one and its value is still what that template
/// renders (the user never set it), the template metadata and the value are replaced by the
/// incoming template and its rendering. Forward goes old → new, backward new → old. See
/// [`template`] for the template language.
pub struct ReplaceTemplateMigration {
    pub setting: &'static str,
    pub old_template: &'static str,
    pub new_template: &'static str,
}

impl ReplaceTemplateMigration {
    fn replace(&self, input: &mut MigrationData, outgoing: &str, incoming: &str) -> Result<()> {
        let Some(value) = input.data.get(self.setting) else {
            println!("Found no '{}' to change", self.setting);
            return Ok(());
        };
        let current = value
            .as_str()
            .context(error::NonStringSettingDataTypeSnafu {
                setting: self.setting,
            })?
            .to_string();
        let template = input
            .metadata
            .get(self.setting)
            .and_then(|m| m.get("template"))
            .and_then(Value::as_str);
        if template != Some(outgoing) {
            println!(
                "Template for '{}' is not set to '{outgoing}', leaving alone",
                self.setting
            );
            return Ok(());
        }
        let rendered_old = template::render(outgoing, &input.data)?;
        input
            .metadata
            .entry(self.setting.to_string())
            .or_default()
            .insert("template".into(), Value::from(incoming));
        if rendered_old == current {
            let rendered_new = template::render(incoming, &input.data)?;
            println!(
                "Changing value of '{}' from '{current}' to '{rendered_new}'",
                self.setting
            );
            input
                .data
                .insert(self.setting.to_string(), Value::from(rendered_new));
        } else {
            println!(
                "'{}' is not set to '{rendered_old}', leaving alone",
                self.setting
            );
        }
        Ok(())
    }
}

impl Migration for ReplaceTemplateMigration {
    fn forward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        self.replace(&mut input, self.old_template, self.new_template)?;
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        self.replace(&mut input, self.new_template, self.old_template)?;
        Ok(input)
    }
}

// =^..^=   metadata   =^..^=

/// Metadata keys of one setting.
#[derive(Debug)]
pub struct SettingMetadata {
    pub setting: &'static str,
    pub metadata: &'static [&'static str],
}

fn remove_metadata(input: &mut MigrationData, list: &[SettingMetadata]) {
    for entry in list {
        let Some(found) = input.metadata.get_mut(entry.setting) else {
            println!("Found no metadata for '{}' setting", entry.setting);
            continue;
        };
        for name in entry.metadata {
            match found.remove(*name) {
                Some(value) => println!("Removed {name}, which was set to '{value}'"),
                None => println!(
                    "Found no metadata '{name}' to remove on setting '{}'",
                    entry.setting
                ),
            }
        }
    }
}

/// Metadata added in this release (defined by the new version's defaults): backward removes it.
pub struct AddMetadataMigration(pub &'static [SettingMetadata]);

impl Migration for AddMetadataMigration {
    fn forward(&mut self, input: MigrationData) -> Result<MigrationData> {
        println!(
            "AddMetadataMigration({:?}) has no work to do on upgrade.",
            self.0
        );
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        remove_metadata(&mut input, self.0);
        Ok(input)
    }
}

/// Metadata removed in this release: forward removes it; backward does nothing.
pub struct RemoveMetadataMigration(pub &'static [SettingMetadata]);

impl Migration for RemoveMetadataMigration {
    fn forward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        remove_metadata(&mut input, self.0);
        Ok(input)
    }

    fn backward(&mut self, input: MigrationData) -> Result<MigrationData> {
        println!(
            "RemoveMetadataMigration({:?}) has no work to do on downgrade.",
            self.0
        );
        Ok(input)
    }
}

/// One string metadata value to replace.
#[derive(Debug, Clone)]
pub struct MetadataReplacement {
    pub setting: &'static str,
    pub metadata: &'static str,
    pub old_val: &'static str,
    pub new_val: &'static str,
}

impl MetadataReplacement {
    /// Replaces `from` by `to`; returns whether it did.
    fn perform(&self, input: &mut MigrationData, from: &str, to: &str) -> bool {
        let Some(found) = input.metadata.get_mut(self.setting) else {
            println!("Found no setting '{}'", self.setting);
            return false;
        };
        match found.get_mut(self.metadata) {
            Some(Value::String(current)) if current == from => {
                println!(
                    "Changed value of metadata '{}' for setting '{}' from '{from}' to '{to}'.",
                    self.metadata, self.setting
                );
                *current = to.to_string();
                true
            }
            Some(Value::String(_)) => {
                println!(
                    "Metadata '{}' for setting '{}' is not set to {from}, leaving alone",
                    self.metadata, self.setting
                );
                false
            }
            Some(other) => {
                println!(
                    "Metadata '{}' for setting '{}' is set to non-string value {other}; ReplaceMetadataMigration only handles strings.",
                    self.metadata, self.setting
                );
                false
            }
            None => {
                println!(
                    "Found no metadata '{}' for setting '{}'",
                    self.metadata, self.setting
                );
                false
            }
        }
    }
}

/// String metadata values whose defaults changed (e.g. a `setting-generator`): forward replaces
/// each `old_val` by `new_val`, backward the reverse.
pub struct ReplaceMetadataMigration(pub Vec<MetadataReplacement>);

impl Migration for ReplaceMetadataMigration {
    fn forward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        for r in &self.0 {
            r.perform(&mut input, r.old_val, r.new_val);
        }
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        for r in &self.0 {
            r.perform(&mut input, r.new_val, r.old_val);
        }
        Ok(input)
    }
}

/// One list-of-strings metadata value to replace.
pub struct MetadataListReplacement {
    pub setting: &'static str,
    pub metadata: &'static str,
    pub old_vals: &'static [&'static str],
    pub new_vals: &'static [&'static str],
}

/// List metadata whose defaults changed (e.g. `affected-services`): each list equal to
/// `old_vals` becomes `new_vals` (backward: the reverse). Non-string items are an error.
pub struct ReplaceMetadataListsMigration(pub Vec<MetadataListReplacement>);

impl ReplaceMetadataListsMigration {
    fn replace(&self, input: &mut MigrationData, forward: bool) -> Result<()> {
        for r in &self.0 {
            let (from, to) = if forward {
                (r.old_vals, r.new_vals)
            } else {
                (r.new_vals, r.old_vals)
            };
            let Some(found) = input.metadata.get_mut(r.setting) else {
                println!("Found no metadata for '{}' setting", r.setting);
                continue;
            };
            match found.get_mut(r.metadata) {
                Some(Value::Array(items)) => {
                    let list =
                        string_list(items).context(error::ReplaceMetadataListContentsSnafu {
                            setting: r.setting,
                            metadata: r.metadata,
                            data: items.clone(),
                        })?;
                    if list == from {
                        println!(
                            "Changed value of metadata '{}' for setting '{}' from {from:?} to {to:?}",
                            r.metadata, r.setting
                        );
                        *items = to.iter().map(|s| Value::from(*s)).collect();
                    } else {
                        println!(
                            "Metadata '{}' for setting '{}' is not set to {from:?}, leaving alone",
                            r.metadata, r.setting
                        );
                    }
                }
                Some(other) => println!(
                    "Metadata '{}' for setting '{}' is set to non-list value '{other}'; ReplaceMetadataListsMigration only handles lists",
                    r.metadata, r.setting
                ),
                None => println!(
                    "Found no metadata '{}' for setting '{}'",
                    r.metadata, r.setting
                ),
            }
        }
        Ok(())
    }
}

impl Migration for ReplaceMetadataListsMigration {
    fn forward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        self.replace(&mut input, true)?;
        Ok(input)
    }

    fn backward(&mut self, mut input: MigrationData) -> Result<MigrationData> {
        self.replace(&mut input, false)?;
        Ok(input)
    }
}

// =^..^=   nothing   =^..^=

/// A migration that changes nothing: for a release that needs a migration on some variants only,
/// the others still get a valid datastore copy.
#[derive(Debug)]
pub struct NoOpMigration;

impl Migration for NoOpMigration {
    fn forward(&mut self, input: MigrationData) -> Result<MigrationData> {
        println!("NoOpMigration has no work to do on upgrade.");
        Ok(input)
    }

    fn backward(&mut self, input: MigrationData) -> Result<MigrationData> {
        println!("NoOpMigration has no work to do on downgrade.");
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;
    use serde_json::json;
    use std::collections::HashMap;

    fn data(pairs: &[(&str, Value)]) -> MigrationData {
        MigrationData {
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            metadata: HashMap::new(),
        }
    }

    fn with_meta(mut d: MigrationData, setting: &str, pairs: &[(&str, Value)]) -> MigrationData {
        let meta: Metadata = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        d.metadata.insert(setting.to_string(), meta);
        d
    }

    fn keys(d: &MigrationData) -> Vec<&str> {
        let mut k: Vec<&str> = d.data.keys().map(String::as_str).collect();
        k.sort();
        k
    }

    #[test]
    fn add_settings_forward_keeps_backward_removes() {
        let input = data(&[("settings.motd", json!("hi")), ("settings.keep", json!(1))]);
        let mut m = AddSettingsMigration(&["settings.motd", "settings.absent"]);
        assert_eq!(m.forward(input.clone()).unwrap(), input);
        assert_eq!(keys(&m.backward(input).unwrap()), ["settings.keep"]);
    }

    #[test]
    fn add_prefixes_backward_removes_every_key_under_them() {
        let input = data(&[
            ("keep.me.a", json!(0)),
            ("remove.me.b", json!(0)),
            ("remove.this.d.e", json!(0)),
            ("keep.this.c", json!(0)),
        ]);
        let mut m = AddPrefixesMigration(vec!["remove.me", "remove.this"]);
        assert_eq!(m.forward(input.clone()).unwrap(), input);
        assert_eq!(
            keys(&m.backward(input).unwrap()),
            ["keep.me.a", "keep.this.c"]
        );
        let mut none = AddPrefixesMigration(vec!["not.found"]);
        let input = data(&[("keep.me.a", json!(0))]);
        assert_eq!(none.backward(input.clone()).unwrap(), input);
    }

    #[test]
    fn remove_settings_forward_removes_backward_keeps() {
        let input = data(&[("settings.old", json!("x")), ("settings.keep", json!(1))]);
        let mut m = RemoveSettingsMigration(&["settings.old"]);
        assert_eq!(keys(&m.forward(input.clone()).unwrap()), ["settings.keep"]);
        assert_eq!(m.backward(input.clone()).unwrap(), input);
    }

    #[test]
    fn rename_moves_value_and_metadata_both_ways() {
        let input = with_meta(
            data(&[("settings.hostname", json!("n1")), ("settings.x", json!(1))]),
            "settings.hostname",
            &[("affected-services", json!(["hostname"]))],
        );
        let mut m = RenameSettingMigration {
            from: "settings.hostname",
            to: "settings.network.hostname",
        };
        let fwd = m.forward(input.clone()).unwrap();
        assert_eq!(fwd.data["settings.network.hostname"], json!("n1"));
        assert!(!fwd.data.contains_key("settings.hostname"));
        assert_eq!(
            fwd.metadata["settings.network.hostname"]["affected-services"],
            json!(["hostname"])
        );
        assert_eq!(m.backward(fwd).unwrap(), input);
        // A transaction without the key is left alone.
        let other = data(&[("settings.x", json!(2))]);
        assert_eq!(m.forward(other.clone()).unwrap(), other);
        // Never overwrite the destination.
        let both = data(&[
            ("settings.hostname", json!("a")),
            ("settings.network.hostname", json!("b")),
        ]);
        assert!(m.forward(both).is_err());
    }

    #[test]
    fn replace_string_only_replaces_the_old_default() {
        let mut m = ReplaceStringMigration {
            setting: "settings.s",
            old_val: "old",
            new_val: "new",
        };
        let fwd = m.forward(data(&[("settings.s", json!("old"))])).unwrap();
        assert_eq!(fwd.data["settings.s"], json!("new"));
        assert_eq!(m.backward(fwd).unwrap().data["settings.s"], json!("old"));
        let user = data(&[("settings.s", json!("mine"))]);
        assert_eq!(m.forward(user.clone()).unwrap(), user);
        assert_eq!(m.backward(user.clone()).unwrap(), user);
        let number = data(&[("settings.s", json!(5))]);
        assert_eq!(m.forward(number.clone()).unwrap(), number);
    }

    #[test]
    fn replace_lists_both_ways_and_rejects_non_strings() {
        let mut m = ReplaceListsMigration(vec![ListReplacement {
            setting: "settings.l",
            old_vals: &["a", "b"],
            new_vals: &["c"],
        }]);
        let fwd = m
            .forward(data(&[("settings.l", json!(["a", "b"]))]))
            .unwrap();
        assert_eq!(fwd.data["settings.l"], json!(["c"]));
        assert_eq!(
            m.backward(fwd).unwrap().data["settings.l"],
            json!(["a", "b"])
        );
        let other = data(&[("settings.l", json!(["z"]))]);
        assert_eq!(m.forward(other.clone()).unwrap(), other);
        assert!(m.forward(data(&[("settings.l", json!([1]))])).is_err());
    }

    #[test]
    fn replace_template_rerenders_untouched_values_both_ways() {
        let mut m = ReplaceTemplateMigration {
            setting: "settings.out",
            old_template: "{{settings.in}}, world",
            new_template: "{{settings.in}}!",
        };
        let input = with_meta(
            data(&[
                ("settings.in", json!("hello")),
                ("settings.out", json!("hello, world")),
            ]),
            "settings.out",
            &[("template", json!("{{settings.in}}, world"))],
        );
        let fwd = m.forward(input.clone()).unwrap();
        assert_eq!(fwd.data["settings.out"], json!("hello!"));
        assert_eq!(
            fwd.metadata["settings.out"]["template"],
            json!("{{settings.in}}!")
        );
        assert_eq!(m.backward(fwd).unwrap(), input);

        // A value the user set is kept (the template metadata still moves on).
        let user = with_meta(
            data(&[
                ("settings.in", json!("hello")),
                ("settings.out", json!("mine")),
            ]),
            "settings.out",
            &[("template", json!("{{settings.in}}, world"))],
        );
        let fwd = m.forward(user).unwrap();
        assert_eq!(fwd.data["settings.out"], json!("mine"));
        // Another template: nothing changes.
        let other = with_meta(
            data(&[
                ("settings.in", json!("hello")),
                ("settings.out", json!("x")),
            ]),
            "settings.out",
            &[("template", json!("something else"))],
        );
        assert_eq!(m.forward(other.clone()).unwrap(), other);
        // A non-string setting is an error.
        assert!(m.forward(data(&[("settings.out", json!(1))])).is_err());
    }

    #[test]
    fn add_metadata_backward_removes_it() {
        let input = with_meta(
            data(&[]),
            "hi",
            &[("there", json!("x")), ("keep", json!(1))],
        );
        let mut m = AddMetadataMigration(&[SettingMetadata {
            setting: "hi",
            metadata: &["there"],
        }]);
        assert_eq!(m.forward(input.clone()).unwrap(), input);
        let back = m.backward(input).unwrap();
        assert_eq!(
            back.metadata["hi"],
            Metadata::from([("keep".to_string(), json!(1))])
        );
    }

    #[test]
    fn remove_metadata_forward_removes_it() {
        let input = with_meta(data(&[]), "hi", &[("there", json!("x"))]);
        let mut m = RemoveMetadataMigration(&[SettingMetadata {
            setting: "hi",
            metadata: &["there"],
        }]);
        assert_eq!(
            m.forward(input.clone()).unwrap().metadata["hi"],
            Metadata::new()
        );
        assert_eq!(m.backward(input.clone()).unwrap(), input);
    }

    #[test]
    fn replace_metadata_both_ways_strings_only() {
        let mut m = ReplaceMetadataMigration(vec![MetadataReplacement {
            setting: "hiking",
            metadata: "setting-generator",
            old_val: "weather-is-sunny",
            new_val: "/bin/true",
        }]);
        let input = with_meta(
            data(&[]),
            "hiking",
            &[("setting-generator", json!("weather-is-sunny"))],
        );
        let fwd = m.forward(input.clone()).unwrap();
        assert_eq!(
            fwd.metadata["hiking"]["setting-generator"],
            json!("/bin/true")
        );
        assert_eq!(m.backward(fwd).unwrap(), input);
        let list = with_meta(data(&[]), "hiking", &[("setting-generator", json!(["x"]))]);
        assert_eq!(m.forward(list.clone()).unwrap(), list);
    }

    #[test]
    fn replace_metadata_lists_both_ways() {
        let mut m = ReplaceMetadataListsMigration(vec![MetadataListReplacement {
            setting: "settings.motd",
            metadata: "affected-services",
            old_vals: &["motd"],
            new_vals: &["motd", "issue"],
        }]);
        let input = with_meta(
            data(&[]),
            "settings.motd",
            &[("affected-services", json!(["motd"]))],
        );
        let fwd = m.forward(input.clone()).unwrap();
        assert_eq!(
            fwd.metadata["settings.motd"]["affected-services"],
            json!(["motd", "issue"])
        );
        assert_eq!(m.backward(fwd).unwrap(), input);
        let bad = with_meta(
            data(&[]),
            "settings.motd",
            &[("affected-services", json!([0]))],
        );
        assert!(m.forward(bad).is_err());
    }

    #[test]
    fn noop_changes_nothing_either_way() {
        let input = with_meta(data(&[("a", json!(1))]), "a", &[("m", json!("v"))]);
        assert_eq!(NoOpMigration.forward(input.clone()).unwrap(), input);
        assert_eq!(NoOpMigration.backward(input.clone()).unwrap(), input);
    }
}

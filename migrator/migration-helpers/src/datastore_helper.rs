//! Reading a datastore into [`MigrationData`] and writing migrated data out, as upstream's
//! `datastore_helper`: data of live and of each pending transaction; metadata of live only.

use crate::error::{self, Result};
use crate::{Metadata, MigrationData};
use datastore::{Committed, FilesystemDataStore, Key, KeyType};
use snafu::ResultExt;
use std::collections::HashMap;

/// Every data key of `committed` (values parsed), and for live every metadata key.
pub fn get_input_data(
    datastore: &FilesystemDataStore,
    committed: &Committed,
) -> Result<MigrationData> {
    let path = datastore.base_path();
    let raw = datastore
        .get_prefix("", committed)
        .context(error::GetDataSnafu {
            committed: committed.to_string(),
            path,
        })?;
    let mut data = HashMap::new();
    for (key, value) in raw {
        let parsed = serde_json::from_str(&value).context(error::DeserializeSnafu {
            key: key.name(),
            input: &value,
        })?;
        data.insert(key.name().to_string(), parsed);
    }

    let mut metadata: HashMap<String, Metadata> = HashMap::new();
    if *committed == Committed::Live {
        let raw = datastore
            .get_metadata_prefix("", committed, None)
            .context(error::GetMetadataSnafu { path })?;
        for (data_key, metas) in raw {
            let entry = metadata.entry(data_key.name().to_string()).or_default();
            for (meta_key, value) in metas {
                let parsed = serde_json::from_str(&value).context(error::DeserializeSnafu {
                    key: format!("{data_key}.{meta_key}"),
                    input: &value,
                })?;
                entry.insert(meta_key.name().to_string(), parsed);
            }
        }
    }
    Ok(MigrationData { data, metadata })
}

/// Writes migrated data (and, for live, metadata) into `datastore`.
pub fn set_output_data(
    datastore: &FilesystemDataStore,
    output: &MigrationData,
    committed: &Committed,
) -> Result<()> {
    let write_context = || error::DataStoreWriteSnafu {
        committed: committed.to_string(),
        path: datastore.base_path(),
    };
    let mut names: Vec<&String> = output.data.keys().collect();
    names.sort();
    for name in names {
        let key = Key::new(KeyType::Data, name).context(error::InvalidKeySnafu {
            key_type: KeyType::Data,
            key: name,
        })?;
        datastore
            .set_value(&key, &output.data[name], committed)
            .with_context(|_| write_context())?;
    }
    for (data_name, metas) in &output.metadata {
        let data_key = Key::new(KeyType::Data, data_name).context(error::InvalidKeySnafu {
            key_type: KeyType::Data,
            key: data_name,
        })?;
        for (meta_name, value) in metas {
            let meta_key = Key::new(KeyType::Meta, meta_name).context(error::InvalidKeySnafu {
                key_type: KeyType::Meta,
                key: meta_name,
            })?;
            datastore
                .set_metadata(
                    &meta_key,
                    &data_key,
                    &datastore::value::serialize(value),
                    committed,
                )
                .with_context(|_| write_context())?;
        }
    }
    Ok(())
}

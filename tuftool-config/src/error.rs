//! The crate's error type. Every variant names the file and, where one is involved, the role,
//! so that the message alone tells a publisher what to fix.

use crate::keys::KeyType;
use crate::role::Role;
use snafu::Snafu;
use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while publishing.
#[derive(Debug, Snafu)]
#[snafu(visibility(pub(crate)))]
#[non_exhaustive]
pub enum Error {
    // --- files ---
    /// A directory could not be created.
    #[snafu(display("Failed to create directory {}: {source}", path.display()))]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A directory could not be read.
    #[snafu(display("Failed to read directory {}: {source}", path.display()))]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A file could not be written.
    #[snafu(display("Failed to write {}: {source}", path.display()))]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },

    /// An atomic write failed (nodeio's error names the file and the step).
    #[snafu(display("{source}"))]
    AtomicWrite { source: nodeio::AtomicWriteError },

    /// Refused to overwrite a file.
    #[snafu(display("{} already exists; refusing to overwrite it", path.display()))]
    FileExists { path: PathBuf },

    /// A directory could not be fsynced.
    #[snafu(display("Failed to fsync directory {}: {source}", path.display()))]
    SyncDir {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A rename failed.
    #[snafu(display("Failed to move {} to {}: {source}", from.display(), to.display()))]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },

    /// A file could not be removed.
    #[snafu(display("Failed to remove {}: {source}", path.display()))]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A target file could not be copied into the repository.
    #[snafu(display("Failed to copy target {} to {}: {source}", from.display(), to.display()))]
    CopyTarget {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },

    /// Another publisher holds the repository.
    #[snafu(display("Repository is locked by another tuftool-config process: {}", path.display()))]
    RepoLocked { path: PathBuf },

    /// A path cannot be turned into a file:// URL.
    #[snafu(display("Cannot make a file:// URL from {}", path.display()))]
    FileUrl { path: PathBuf },

    // --- config ---
    /// The config file could not be read.
    #[snafu(display("Failed to read config {}: {source}", path.display()))]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The config file is not valid.
    #[snafu(display("Invalid config {}: {source}", path.display()))]
    ParseConfig {
        path: PathBuf,
        source: toml::de::Error,
    },

    /// A URL in the config is not valid.
    #[snafu(display("Invalid {field} '{url}' in config {}: {source}", path.display()))]
    ConfigUrl {
        path: PathBuf,
        field: &'static str,
        url: String,
        source: url::ParseError,
    },

    /// A role lists no keys.
    #[snafu(display("Config {} lists no keys for role '{role}'", path.display()))]
    ConfigNoKeys { path: PathBuf, role: Role },

    /// A role's threshold exceeds its keys.
    #[snafu(display(
        "Config {}: threshold {threshold} for role '{role}' is more than its {keys} distinct key(s)",
        path.display()
    ))]
    ConfigThreshold {
        path: PathBuf,
        role: Role,
        threshold: u64,
        keys: u64,
    },

    /// A key named in the config could not be loaded.
    #[snafu(display("Key {} for role '{role}' (config {}) could not be loaded: {source}", path.display(), config.display()))]
    ConfigKey {
        path: PathBuf,
        role: Role,
        config: PathBuf,
        source: Box<Error>,
    },

    /// Two configs of a rotation name different repositories.
    #[snafu(display(
        "The old config's repository {} and the new config's repository {} differ; a rotation publishes into one repository",
        old.display(),
        new.display()
    ))]
    RepositoryMismatch { old: PathBuf, new: PathBuf },

    // --- expiry ---
    /// A lifetime could not be parsed.
    #[snafu(display(
        "Invalid lifetime '{text}': expected e.g. '7 days', '12 weeks', '1 week 3 days', '36 hours' (units: seconds, minutes, hours, days, weeks)"
    ))]
    BadLifetime { text: String },

    /// now + lifetime is out of range.
    #[snafu(display("Expiry time out of range for lifetime {lifetime}"))]
    ExpiryOverflow { lifetime: String },

    // --- keys ---
    /// Unknown key type name.
    #[snafu(display("Unknown key type '{name}': expected rsa, ed25519 or ecdsa-p256"))]
    UnknownKeyType { name: String },

    /// Key generation failed.
    #[snafu(display("Failed to generate a {key_type} key"))]
    GenerateKey { key_type: KeyType },

    /// A key file could not be read.
    #[snafu(display("Failed to read key {}: {source}", path.display()))]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A key file holds no usable key.
    #[snafu(display("Key {} is not a usable signing key: {detail}", path.display()))]
    KeyUnrecognized { path: PathBuf, detail: String },

    /// A key source failed.
    #[snafu(display("Key source {label} failed: {message}"))]
    KeySource { label: String, message: String },

    /// A key ID could not be computed.
    #[snafu(display("Failed to compute the key ID of {key}: {source}"))]
    KeyId {
        key: String,
        #[snafu(source(from(tough::schema::Error, Box::new)))]
        source: Box<tough::schema::Error>,
    },

    // --- root ---
    /// root.json could not be read.
    #[snafu(display("Failed to read root.json {}: {source}", path.display()))]
    ReadRoot {
        path: PathBuf,
        source: std::io::Error,
    },

    /// root.json is not valid JSON / TUF.
    #[snafu(display("{root} is not a valid root.json: {source}"))]
    ParseRoot {
        root: String,
        source: serde_json::Error,
    },

    /// root.json is not signed by a threshold of its own root keys.
    #[snafu(display("{root} is not signed by a threshold of its own root keys: {message}"))]
    RootNotSelfSigned { root: String, message: String },

    /// The root has no entry for a role.
    #[snafu(display("{root} has no keys for role '{role}'"))]
    RoleMissingFromRoot { role: Role, root: String },

    /// A key is not listed in root.json for the role it is meant to sign.
    #[snafu(display("{key} is not listed in {root} for role '{role}'"))]
    KeyNotInRoot {
        key: String,
        role: Role,
        root: String,
    },

    /// Fewer keys than the threshold.
    #[snafu(display(
        "Threshold for role '{role}' not met: {available} of {threshold} keys available ({root})"
    ))]
    ThresholdNotMet {
        role: Role,
        available: u64,
        threshold: u64,
        root: String,
    },

    /// A root's expiry is not in the future.
    #[snafu(display(
        "The new root.json would expire at {expires}, which is not after now ({now})"
    ))]
    RootExpiryInPast { expires: String, now: String },

    /// A root spec lacks a role.
    #[snafu(display("The root spec has no keys for role '{role}'; all four roles are required"))]
    RootSpecMissingRole { role: Role },

    /// A root spec's threshold exceeds its keys.
    #[snafu(display(
        "Threshold {threshold} for role '{role}' is more than its {keys} distinct key(s)"
    ))]
    ThresholdAboveKeyCount {
        role: Role,
        threshold: u64,
        keys: usize,
    },

    /// A rotated root must be exactly one version newer.
    #[snafu(display("A root rotated from {root} must be version {expected}, not {given}"))]
    RotatedRootVersion {
        given: u64,
        expected: u64,
        root: String,
    },

    /// The rotated root does not verify under the old root.
    #[snafu(display("{root} is not accepted by the old root: {message}"))]
    RotationNotVerified { root: String, message: String },

    /// The root has expired.
    #[snafu(display(
        "{root} has expired (role 'root', expired at {expires}, now is {now}); rotate or re-create the root"
    ))]
    RootExpired {
        root: String,
        expires: String,
        now: String,
    },

    /// The config's root is older than the repository's.
    #[snafu(display(
        "{root} is older than the root published in {} (version {published}); point the config at the newest root.json",
        path.display()
    ))]
    RootOutdated {
        root: String,
        published: u64,
        path: PathBuf,
    },

    /// Same version, different content.
    #[snafu(display("{root} differs from the published {} of the same version", published.display()))]
    RootDiffers { root: String, published: PathBuf },

    /// A root version is missing from the chain.
    #[snafu(display(
        "Cannot publish {root}: {missing}.root.json is missing from {} (clients walk the root chain one version at a time)",
        path.display()
    ))]
    RootChainGap {
        root: String,
        missing: u64,
        path: PathBuf,
    },

    /// Rotation needs a published repository.
    #[snafu(display("{old_root} is version {version}, but the repository {} has root version {published}", path.display()))]
    RotationBase {
        old_root: String,
        version: u64,
        published: u64,
        path: PathBuf,
    },

    // --- repository ---
    /// The published repository does not load.
    #[snafu(display("The existing repository {} does not load: {message}", path.display()))]
    PublishedRepo { path: PathBuf, message: String },

    /// Refresh needs a repository.
    #[snafu(display("There is no repository to refresh in {} (no metadata/timestamp.json); build it first", path.display()))]
    NothingToRefresh { path: PathBuf },

    /// Delegated targets are not supported.
    #[snafu(display("The repository {} uses delegated targets, which tuftool-config does not support", path.display()))]
    DelegationsUnsupported { path: PathBuf },

    /// A target name is not usable.
    #[snafu(display("Target file {} has an unusable name '{name}': {message}", path.display()))]
    BadTargetName {
        name: String,
        path: PathBuf,
        message: String,
    },

    /// A target file could not be read.
    #[snafu(display("Failed to read target {}: {message}", path.display()))]
    ReadTarget { path: PathBuf, message: String },

    /// Two target files with one name.
    #[snafu(display(
        "Two different files would be target '{name}': {} and {}",
        first.display(),
        second.display()
    ))]
    DuplicateTarget {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },

    /// The manifest could not be read.
    #[snafu(display("Failed to read manifest {}: {source}", path.display()))]
    ReadManifest {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The manifest is not JSON.
    #[snafu(display("Manifest {} is not valid JSON: {source}", path.display()))]
    ParseManifest {
        path: PathBuf,
        source: serde_json::Error,
    },

    /// The manifest names a target that is neither new nor published.
    #[snafu(display(
        "Target '{name}' named in manifest {} is missing (role 'targets'): it is neither in the targets directory{} nor in the repository",
        manifest.display(),
        targets_dir.as_ref().map(|d| format!(" {}", d.display())).unwrap_or_default()
    ))]
    TargetMissing {
        name: String,
        manifest: PathBuf,
        targets_dir: Option<PathBuf>,
    },

    /// Explicit versions must increase.
    #[snafu(display(
        "Version {given} for role '{role}' does not increase the published version {previous}"
    ))]
    VersionNotIncreasing {
        role: Role,
        given: u64,
        previous: u64,
    },

    /// Serialization failed.
    #[snafu(display("Failed to serialize role '{role}': {source}"))]
    Serialize {
        role: Role,
        source: serde_json::Error,
    },

    /// tough refused to sign.
    #[snafu(display("Failed to sign role '{role}': {source}"))]
    Sign {
        role: Role,
        #[snafu(source(from(tough::error::Error, Box::new)))]
        source: Box<tough::error::Error>,
    },

    /// The staged repository does not load or check out; nothing was published.
    #[snafu(display("The new repository for {} failed verification, nothing was published: {message}", path.display()))]
    StagedInvalid { path: PathBuf, message: String },
}

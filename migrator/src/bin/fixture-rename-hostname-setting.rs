//! Fixture migration `migrate_v1.2.0_rename-hostname-setting`: release 1.2.0 renames
//! `settings.hostname` to `settings.network.hostname` (value and metadata); going back renames it
//! back.

#[path = "fixture/mod.rs"]
mod fixture;

use migration_helpers::common_migrations::RenameSettingMigration;

fn main() {
    fixture::main(
        "rename-hostname-setting",
        RenameSettingMigration {
            from: "settings.hostname",
            to: "settings.network.hostname",
        },
    );
}

//! Fixture migration `migrate_v1.1.0_add-motd-default`: release 1.1.0 adds `settings.motd` with a
//! default (supplied by the new release); going back to 1.0.0 removes it.

#[path = "fixture/mod.rs"]
mod fixture;

use migration_helpers::common_migrations::AddSettingsMigration;

fn main() {
    fixture::main("add-motd-default", AddSettingsMigration(&["settings.motd"]));
}

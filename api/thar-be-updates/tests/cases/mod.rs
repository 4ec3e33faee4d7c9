mod commands;
mod concurrency;
mod hostile_files;
mod support;
mod version_lock;

//! thar-be-updates as a process (`CARGO_BIN_EXE_thar-be-updates`) on a simulated node: a sysroot and a
//! Bottlerocket-layout disk holding the running release's real images, against the fixture chain
//! 1.0.0 → 1.1.0 → 1.2.0 served over HTTP by repo-fixtures' fault server.

mod cases;

//! Configuration: one TOML file, every key overridable by `RESEAT_…` environment variables.

pub mod duration;

//! Compliance: campaign-finance law as data (rule packs in `compliance/*.toml`) and pure
//! decisions over it.
//!
//! Invariants: nothing here does I/O except reading pack files at start; `screen` is a pure
//! function of the pack, the donor, their history and the gift, so every decision can be
//! replayed; a pack that does not validate is never used.

pub mod declaration;
pub mod identity;
pub mod pack;
pub mod ruling;
pub mod screen;

pub use declaration::Declaration;
pub use pack::{Packs, RulePack};
pub use ruling::{replay, Ruling, Screening};
pub use screen::{screen, Decision, Verdict};

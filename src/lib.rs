//! Obole: a micro-donation payment and compliance ledger for political campaigns.
//!
//! Pure rules sit at the centre and know nothing of I/O (the ledger, the compliance
//! engine's packs and `screen`); the only SQL is in `store`; the use cases (`intake`,
//! `enforcement`, `journal`, `checkout`) and the shells (`sealer`, `audit`, `http`, `app`, `cli`)
//! connect them to the world.

// The Stripe simulator builds Stripe's large objects with `serde_json::json!`.
#![recursion_limit = "256"]

// Pure core.
pub mod campaign;
pub mod clock;
pub mod compliance;
pub mod ids;
pub mod ledger;
pub mod money;

// Payment providers' wire formats.
pub mod provider;

// The one place with SQL.
pub mod store;

// Use cases and shells.
pub mod access;
pub mod app;
pub mod audit;
pub mod checkout;
pub mod cli;
pub mod combiner;
pub mod demo;
pub mod enforcement;
pub mod http;
pub mod intake;
pub mod journal;
pub mod reports;
pub mod sealer;
pub mod telemetry;

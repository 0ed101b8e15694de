//! Payment providers. Stripe is the one in production; each provider's wire formats stay
//! inside its own module. The offline demo provider (`demo`) speaks Stripe's API, so the
//! one client, webhook check and intake serve both: what the demo shows is what runs.

pub mod demo;
pub mod stripe;

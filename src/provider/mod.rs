//! Payment providers. Stripe is the one in production; each provider's wire formats stay
//! inside its own module.

pub mod stripe;

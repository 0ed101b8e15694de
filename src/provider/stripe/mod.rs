//! Stripe: webhook signatures and, later, the API client and wire types.

pub mod signature;

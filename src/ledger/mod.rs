//! The double-entry journal, as pure rules with no I/O.
//!
//! Invariants (each also enforced by the database, see `migrations/`):
//! - An entry has at least two postings, none of them zero, and its postings sum to zero in
//!   every currency (debits positive, credits negative).
//! - Every posting's account belongs to the entry's campaign and holds the posting's currency.
//! - Entries are never changed or removed; a correction is a new entry that reverses one.
//! - An entry is identified for retries by its idempotency key; its content hash decides
//!   whether a retry is the same write (answered with the original) or a conflict.
//! - Sealed entries form one SHA-256 chain ([`seal`]); balances are sums of postings
//!   ([`balance`]).

pub mod account;
pub mod balance;
pub mod entry;
pub mod seal;

pub use account::{AccountKind, ChartAccount, CHART};
pub use balance::{hour_bucket, AccountBalance};
pub use entry::{Entry, EntryContent, EntryDraft, EntryError, Links, Posting, StoredEntry};
pub use seal::{ChainAudit, ChainBreak, Hash32, Seal};

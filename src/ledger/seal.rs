//! The seal: a SHA-256 hash chain over entries, and its audit.
//!
//! Invariants:
//! - Seal sequence numbers start at 1 and have no gaps; each link's `prev_hash` is the hash
//!   of the link before it (all zeros for the first).
//! - A link hashes the sequence, the entry id, the entry's content hash and its recorded
//!   time, so changing any posting, description, date or link of a sealed entry breaks it.
//! - The chain is extended by one sealer in the background, in the order entries reach it,
//!   so writers never wait on "the previous hash".
//!
//! [`ChainAudit`] re-derives everything from the entries: every content hash, every link,
//! every hourly roll-up and the zero sum of all balances, and names the first break.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::balance::{rollup_keys, RollupKey, Span};
use super::entry::{Canonical, StoredEntry};
use crate::clock::unix_micros;
use crate::ids::{AccountId, EntryId};
use crate::money::Currency;

/// A SHA-256 digest, shown and stored as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The `prev_hash` of the first link.
    pub const GENESIS: Hash32 = Hash32([0; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Hash32> {
        let mut bytes = [0_u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Hash32(bytes))
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// One link of the chain, or the chain's head: the sequence reached and its hash. Reports
/// print the head they read under, so anyone can later check it with `obole verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Seal {
    pub sequence: i64,
    pub hash: Hash32,
}

/// The hash of link `sequence`, sealing `entry` after `prev`.
pub fn link_hash(
    prev: Hash32,
    sequence: i64,
    entry_id: EntryId,
    content_hash: Hash32,
    recorded_at: DateTime<Utc>,
) -> Hash32 {
    let mut h = Canonical(Sha256::new());
    h.text("obole/seal/v1");
    h.bytes(&prev.0);
    h.int(sequence);
    h.int(entry_id.0);
    h.bytes(&content_hash.0);
    h.int(unix_micros(recorded_at));
    Hash32(h.0.finalize().into())
}

/// A link as stored, with the entry it seals.
#[derive(Debug, Clone)]
pub struct SealedEntry {
    pub sequence: i64,
    pub prev_hash: Hash32,
    pub hash: Hash32,
    pub entry: StoredEntry,
}

/// The first thing found wrong, named so an auditor can look at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("seal #{sequence} (entry {entry_id}): {reason}")]
    Link {
        sequence: i64,
        entry_id: EntryId,
        reason: String,
    },
    #[error("seal #{expected} is missing: the chain jumps to #{found}")]
    Gap { expected: i64, found: i64 },
    #[error("the recorded head (#{recorded_sequence} {recorded_hash}) does not match the chain (#{chain_sequence} {chain_hash})")]
    Head {
        recorded_sequence: i64,
        recorded_hash: Hash32,
        chain_sequence: i64,
        chain_hash: Hash32,
    },
    #[error("account {account_id}, {} {bucket}: roll-up says {stored} minor units but its sealed postings sum to {computed}", span.as_str())]
    Rollup {
        account_id: AccountId,
        span: Span,
        bucket: i64,
        stored: i64,
        computed: i64,
    },
    #[error("all balances in {currency} sum to {sum} minor units instead of 0")]
    Imbalance { currency: Currency, sum: i128 },
    #[error(
        "seal #{sequence} should be {expected} (as printed on a report) but the chain has {found}"
    )]
    Checkpoint {
        sequence: i64,
        expected: Hash32,
        found: String,
    },
}

/// What a passing audit establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    pub entries_sealed: i64,
    pub postings: i64,
    pub head: Option<Seal>,
}

/// Walks the chain in sequence order, re-deriving every hash and balance.
#[derive(Debug, Default)]
pub struct ChainAudit {
    /// Seals known from outside (printed on reports) that the chain must contain.
    checkpoints: BTreeMap<i64, Hash32>,
    last: Option<Seal>,
    postings: i64,
    rollups: BTreeMap<RollupKey, i64>,
    totals: BTreeMap<Currency, i128>,
}

impl ChainAudit {
    pub fn new() -> ChainAudit {
        ChainAudit::default()
    }

    /// An audit that also requires the chain to pass through each of `checkpoints`: a chain
    /// rewritten from some point on is self-consistent, but not with seals printed before.
    pub fn with_checkpoints(checkpoints: impl IntoIterator<Item = Seal>) -> ChainAudit {
        ChainAudit {
            checkpoints: checkpoints
                .into_iter()
                .map(|s| (s.sequence, s.hash))
                .collect(),
            ..ChainAudit::default()
        }
    }

    /// Checks the next link. Links must be fed in sequence order.
    pub fn check(&mut self, link: &SealedEntry) -> Result<(), ChainBreak> {
        let expected_sequence = self.last.map_or(1, |seal| seal.sequence + 1);
        if link.sequence != expected_sequence {
            return Err(ChainBreak::Gap {
                expected: expected_sequence,
                found: link.sequence,
            });
        }
        let entry = &link.entry;
        let broken = |reason: String| ChainBreak::Link {
            sequence: link.sequence,
            entry_id: entry.id,
            reason,
        };
        let expected_prev = self.last.map_or(Hash32::GENESIS, |seal| seal.hash);
        if link.prev_hash != expected_prev {
            return Err(broken(format!(
                "prev_hash {} should be {}",
                link.prev_hash, expected_prev
            )));
        }
        let content_hash = entry.content.hash();
        if content_hash != entry.content_hash {
            return Err(broken(format!(
                "the entry's content hashes to {content_hash} but {} was recorded: a posting, date, description or link was changed",
                entry.content_hash
            )));
        }
        let hash = link_hash(
            link.prev_hash,
            link.sequence,
            entry.id,
            entry.content_hash,
            entry.recorded_at,
        );
        if hash != link.hash {
            return Err(broken(format!(
                "hash should be {hash}, the store has {}",
                link.hash
            )));
        }
        entry
            .content
            .check_balanced()
            .map_err(|e| broken(format!("entry is not valid double entry: {e}")))?;
        if entry.account_ids.len() != entry.content.postings.len() {
            return Err(broken("postings and accounts do not line up".to_owned()));
        }
        for (posting, account_id) in entry.content.postings.iter().zip(&entry.account_ids) {
            let minor = posting.amount.minor();
            for key in rollup_keys(*account_id, entry.content.effective_at) {
                let slot = self.rollups.entry(key).or_default();
                *slot = slot
                    .checked_add(minor)
                    .ok_or_else(|| broken("a roll-up overflows".to_owned()))?;
            }
            *self.totals.entry(posting.amount.currency()).or_default() += i128::from(minor);
            self.postings += 1;
        }
        if let Some(expected) = self.checkpoints.remove(&link.sequence) {
            if expected != link.hash {
                return Err(ChainBreak::Checkpoint {
                    sequence: link.sequence,
                    expected,
                    found: link.hash.to_hex(),
                });
            }
        }
        self.last = Some(Seal {
            sequence: link.sequence,
            hash: link.hash,
        });
        Ok(())
    }

    /// Ends the audit: the recorded head must be where the chain ended, and the stored
    /// roll-ups (key, amount) must equal the ones re-derived from the postings.
    pub fn finish(
        self,
        recorded_head: Option<Seal>,
        stored_rollups: impl IntoIterator<Item = (RollupKey, i64)>,
    ) -> Result<AuditSummary, ChainBreak> {
        let chain_head = self.last;
        if let Some((&sequence, &expected)) = self.checkpoints.iter().next() {
            return Err(ChainBreak::Checkpoint {
                sequence,
                expected,
                found: "no such seal".into(),
            });
        }
        if recorded_head != chain_head {
            let blank = Seal {
                sequence: 0,
                hash: Hash32::GENESIS,
            };
            let recorded = recorded_head.unwrap_or(blank);
            let chain = chain_head.unwrap_or(blank);
            return Err(ChainBreak::Head {
                recorded_sequence: recorded.sequence,
                recorded_hash: recorded.hash,
                chain_sequence: chain.sequence,
                chain_hash: chain.hash,
            });
        }
        let mut computed = self.rollups;
        computed.retain(|_, amount| *amount != 0);
        for ((account_id, span, bucket), stored) in stored_rollups {
            let derived = computed.remove(&(account_id, span, bucket)).unwrap_or(0);
            if derived != stored {
                return Err(ChainBreak::Rollup {
                    account_id,
                    span,
                    bucket,
                    stored,
                    computed: derived,
                });
            }
        }
        if let Some(((account_id, span, bucket), amount)) = computed.into_iter().next() {
            return Err(ChainBreak::Rollup {
                account_id,
                span,
                bucket,
                stored: 0,
                computed: amount,
            });
        }
        if let Some((currency, sum)) = self.totals.into_iter().find(|(_, sum)| *sum != 0) {
            return Err(ChainBreak::Imbalance { currency, sum });
        }
        Ok(AuditSummary {
            entries_sealed: chain_head.map_or(0, |seal| seal.sequence),
            postings: self.postings,
            head: chain_head,
        })
    }
}

//! Journal entries: drafting, validating, hashing, reversing.
//!
//! A caller writes an [`EntryDraft`]; [`Entry::new`] checks it against the campaign and the
//! chart and computes its content hash. Postings are kept in one canonical order (account,
//! currency, amount) so that the same movement written twice, in any order, hashes the same.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::account::chart_account;
use super::seal::Hash32;
use crate::campaign::Campaign;
use crate::clock::{to_micros, unix_micros};
use crate::ids::{AccountId, CampaignId, EntryId, IdempotencyKey};
use crate::money::{Currency, Money};

/// Upper bound on postings per entry: a donation with fee, refund and dispute lines needs
/// fewer than ten; the bound keeps a single write's cost and size predictable.
pub const POSTINGS_PER_ENTRY_MAX: usize = 64;
/// Upper bound on an entry description, in characters.
pub const DESCRIPTION_LEN_MAX: usize = 500;
/// Upper bound on a link (source or event id), in characters.
pub const LINK_LEN_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("an entry needs at least two postings; this one has {0}")]
    TooFewPostings(usize),
    #[error("an entry may have at most {max} postings; this one has {0}", max = POSTINGS_PER_ENTRY_MAX)]
    TooManyPostings(usize),
    #[error("posting to {0} is zero; a posting must move money")]
    ZeroPosting(String),
    #[error("no account {0:?} in the chart of accounts")]
    UnknownAccount(String),
    #[error(
        "posting to {account} is in {currency}, but the campaign keeps its books in {expected}"
    )]
    WrongCurrency {
        account: String,
        currency: Currency,
        expected: Currency,
    },
    #[error("postings do not balance in {currency}: they sum to {sum} minor units instead of 0")]
    Unbalanced { currency: Currency, sum: i128 },
    #[error("the description is {0} characters long; at most {max} are allowed", max = DESCRIPTION_LEN_MAX)]
    DescriptionTooLong(usize),
    #[error("the {0} link is empty or longer than {max} characters", max = LINK_LEN_MAX)]
    BadLink(&'static str),
}

/// Where an entry came from: the provider's money movement and event, the donor and the
/// contribution it concerns. All optional: a manual correction may have none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Links {
    /// The money movement, e.g. `stripe:txn_1P…` (a Stripe balance transaction).
    pub source: Option<String>,
    /// The provider event that told us, e.g. `evt_1P…`.
    pub event_id: Option<String>,
    pub donor_id: Option<i64>,
    pub contribution_id: Option<i64>,
}

/// One line of an entry: an amount debited (positive) or credited (negative) to an account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Posting {
    pub account: String,
    pub amount: Money,
}

/// What a caller asks the ledger to record.
#[derive(Debug, Clone)]
pub struct EntryDraft {
    pub idempotency_key: IdempotencyKey,
    pub description: String,
    /// When the money moved: the business time balances and reports use.
    pub effective_at: DateTime<Utc>,
    pub postings: Vec<Posting>,
    pub links: Links,
    /// The entry this one cancels, for corrections.
    pub reverses: Option<EntryId>,
}

impl EntryDraft {
    pub fn new(
        idempotency_key: IdempotencyKey,
        description: impl Into<String>,
        effective_at: DateTime<Utc>,
    ) -> EntryDraft {
        EntryDraft {
            idempotency_key,
            description: description.into(),
            effective_at,
            postings: Vec::new(),
            links: Links::default(),
            reverses: None,
        }
    }

    /// Adds a posting: positive debits `account`, negative credits it.
    pub fn post(mut self, account: &str, amount: Money) -> EntryDraft {
        self.postings.push(Posting {
            account: account.to_owned(),
            amount,
        });
        self
    }

    pub fn links(mut self, links: Links) -> EntryDraft {
        self.links = links;
        self
    }
}

/// Everything an entry says, exactly as hashed. Read back from a store it may have been
/// tampered with, so it carries no validity promise of its own: see [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryContent {
    pub campaign_id: CampaignId,
    pub idempotency_key: String,
    pub description: String,
    pub effective_at: DateTime<Utc>,
    /// In canonical order.
    pub postings: Vec<Posting>,
    pub links: Links,
    pub reverses: Option<EntryId>,
}

impl EntryContent {
    /// SHA-256 over a length-prefixed encoding of every field, postings sorted. A version tag
    /// leads, so a future encoding can coexist with sealed history.
    pub fn hash(&self) -> Hash32 {
        let mut postings = self.postings.clone();
        postings.sort();
        let mut h = Canonical(Sha256::new());
        h.text("obole/entry/v1");
        h.int(self.campaign_id.0);
        h.text(&self.idempotency_key);
        h.text(&self.description);
        h.int(unix_micros(self.effective_at));
        h.optional_int(self.reverses.map(|id| id.0));
        h.optional_text(self.links.source.as_deref());
        h.optional_text(self.links.event_id.as_deref());
        h.optional_int(self.links.donor_id);
        h.optional_int(self.links.contribution_id);
        h.int(postings.len() as i64);
        for posting in &postings {
            h.text(&posting.account);
            h.text(posting.amount.currency().code());
            h.int(posting.amount.minor());
        }
        Hash32(h.0.finalize().into())
    }

    /// Checks the double-entry rules on content as it stands (also used by `verify` on content
    /// read back from a store).
    pub fn check_balanced(&self) -> Result<(), EntryError> {
        let count = self.postings.len();
        if count < 2 {
            return Err(EntryError::TooFewPostings(count));
        }
        let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
        for posting in &self.postings {
            if posting.amount.is_zero() {
                return Err(EntryError::ZeroPosting(posting.account.clone()));
            }
            *sums.entry(posting.amount.currency()).or_default() +=
                i128::from(posting.amount.minor());
        }
        match sums.into_iter().find(|(_, sum)| *sum != 0) {
            Some((currency, sum)) => Err(EntryError::Unbalanced { currency, sum }),
            None => Ok(()),
        }
    }
}

/// A validated entry, ready to be written: balanced, within bounds, on the campaign's
/// accounts and currency, with its content hash computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    content: EntryContent,
    content_hash: Hash32,
}

impl Entry {
    pub fn new(campaign: &Campaign, draft: EntryDraft) -> Result<Entry, EntryError> {
        let count = draft.postings.len();
        if count > POSTINGS_PER_ENTRY_MAX {
            return Err(EntryError::TooManyPostings(count));
        }
        let description_len = draft.description.chars().count();
        if description_len > DESCRIPTION_LEN_MAX {
            return Err(EntryError::DescriptionTooLong(description_len));
        }
        for (name, link) in [
            ("source", &draft.links.source),
            ("event", &draft.links.event_id),
        ] {
            if link
                .as_ref()
                .is_some_and(|l| l.is_empty() || l.chars().count() > LINK_LEN_MAX)
            {
                return Err(EntryError::BadLink(name));
            }
        }
        for posting in &draft.postings {
            if chart_account(&posting.account).is_none() {
                return Err(EntryError::UnknownAccount(posting.account.clone()));
            }
            if posting.amount.currency() != campaign.currency {
                return Err(EntryError::WrongCurrency {
                    account: posting.account.clone(),
                    currency: posting.amount.currency(),
                    expected: campaign.currency,
                });
            }
        }
        let mut postings = draft.postings;
        postings.sort();
        let content = EntryContent {
            campaign_id: campaign.id,
            idempotency_key: draft.idempotency_key.as_str().to_owned(),
            description: draft.description,
            effective_at: to_micros(draft.effective_at),
            postings,
            links: draft.links,
            reverses: draft.reverses,
        };
        content.check_balanced()?;
        let content_hash = content.hash();
        Ok(Entry {
            content,
            content_hash,
        })
    }

    pub fn content(&self) -> &EntryContent {
        &self.content
    }

    pub fn content_hash(&self) -> Hash32 {
        self.content_hash
    }
}

/// A posting as stored: with the account's row id, which roll-ups are keyed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredPosting {
    pub account_id: AccountId,
    pub posting: Posting,
}

/// An entry read back from a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEntry {
    pub id: EntryId,
    pub content: EntryContent,
    /// The hash recorded when the entry was written.
    pub content_hash: Hash32,
    pub recorded_at: DateTime<Utc>,
    pub account_ids: Vec<AccountId>,
}

impl StoredEntry {
    /// A draft that cancels this entry: every posting negated, linked back to it. Posting it
    /// is how a mistake is corrected, since entries are never edited.
    pub fn reversal(
        &self,
        idempotency_key: IdempotencyKey,
        effective_at: DateTime<Utc>,
        description: impl Into<String>,
    ) -> Result<EntryDraft, crate::money::MoneyError> {
        let postings = self
            .content
            .postings
            .iter()
            .map(|p| {
                Ok(Posting {
                    account: p.account.clone(),
                    amount: p.amount.checked_neg()?,
                })
            })
            .collect::<Result<Vec<_>, crate::money::MoneyError>>()?;
        Ok(EntryDraft {
            idempotency_key,
            description: description.into(),
            effective_at,
            postings,
            links: self.content.links.clone(),
            reverses: Some(self.id),
        })
    }
}

/// A SHA-256 writer with an unambiguous field encoding: integers as 8 bytes big-endian, text
/// as its length then its UTF-8 bytes, optional values behind a presence byte.
pub(crate) struct Canonical(pub(crate) Sha256);

impl Canonical {
    pub(crate) fn int(&mut self, value: i64) {
        self.0.update(value.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.int(value.len() as i64);
        self.0.update(value);
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    fn optional_int(&mut self, value: Option<i64>) {
        match value {
            None => self.0.update([0]),
            Some(v) => {
                self.0.update([1]);
                self.int(v);
            }
        }
    }

    fn optional_text(&mut self, value: Option<&str>) {
        match value {
            None => self.0.update([0]),
            Some(v) => {
                self.0.update([1]);
                self.text(v);
            }
        }
    }
}

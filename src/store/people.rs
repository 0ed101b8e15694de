//! What both stores share for persons and enforcement: the requests they take and the SQL
//! text that is the same in both dialects.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::money::Money;
use crate::provider::stripe::objects::Payer;

/// A donor as a payment or a checkout describes them, before they are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDonor {
    /// The key that finds the donor row within the campaign (see `intake::identity_key`).
    pub identity_key: String,
    pub payer: Payer,
    /// The identity keys that link the donor to a person (`compliance::identity::Giver::keys`).
    pub links: Vec<String>,
}

/// A checkout's request to hold room for a gift while the donor pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    pub donor: NewDonor,
    pub amount: Money,
    /// What the donor declared, as JSON (`compliance::Declaration`).
    pub declared: String,
    /// The election the gift counts for, when the donor designated one.
    pub election: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A treasurer's placement of a donor: merged into the person of `into`, or split off on its
/// own (`into` = `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DonorPlacement {
    pub donor: i64,
    pub into: Option<i64>,
    pub reason: String,
}

/// Refund requests tried this often without success are left to the treasurer (with the
/// worker's backoff, about two hours of trying).
pub(crate) const MAX_REFUND_ATTEMPTS: i32 = 16;

/// Reads a stored payment method.
pub(crate) fn stored_method(
    text: &str,
) -> Result<crate::compliance::screen::Method, super::StoreError> {
    crate::enforcement::method_from_str(text)
        .ok_or_else(|| super::StoreError::Corrupt(format!("payment method {text:?}")))
}

/// An owed refund with what the ledger still shows owed (`liabilities:refunds_due`, credited
/// by the decision and debited by the refund). The gift's postings are found by its entries
/// alone, never through the account's index, whose size grows with the campaign.
pub(crate) const OWED_REFUND_COLUMNS: &str =
    "SELECT x.contribution_id, x.round, x.campaign_id, c.charge_id,
        c.method, x.amount, x.currency, x.reason, x.remedy_by, x.refund_id, x.attempts,
        x.last_error,
        coalesce((SELECT CAST(-sum(CASE WHEN a.name = 'liabilities:refunds_due'
                                        THEN p.amount ELSE 0 END) AS BIGINT)
                  FROM entries e
                  JOIN postings p ON p.entry_id = e.id
                  JOIN accounts a ON a.id = p.account_id
                  WHERE e.contribution_id = x.contribution_id), 0) AS outstanding
     FROM excess_refunds x JOIN contributions c ON c.id = x.contribution_id";

/// A reservation as the payment that fulfils it needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationFacts {
    pub id: i64,
    pub campaign_id: crate::ids::CampaignId,
    pub declared: String,
    pub election: Option<String>,
}

/// A checkout as the donor's pages and the provider's session events see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutFacts {
    pub reservation_id: i64,
    pub campaign_id: crate::ids::CampaignId,
    pub donor_id: i64,
    pub amount: Money,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the room went back: paid, cancelled or expired.
    pub released_at: Option<DateTime<Utc>>,
    /// The gift that paid it, once posted.
    pub contribution_id: Option<i64>,
    pub checkout_session_id: Option<String>,
}

/// How a checkout is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutKey<'a> {
    Reservation(i64),
    /// The provider's Checkout session id.
    Session(&'a str),
}

/// The columns [`CheckoutFacts`] is read from, in its field order.
pub(crate) const CHECKOUT_COLUMNS: &str = "SELECT id, campaign_id, donor_id, amount, currency,
        created_at, expires_at, released_at, contribution_id, checkout_session_id
     FROM reservations";

/// A stored decision, for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDecision {
    pub id: i64,
    pub stage: String,
    pub contribution_id: Option<i64>,
    pub pack: String,
    pub pack_version: u32,
    pub verdict: String,
    pub inputs: String,
    pub decision: String,
}

/// The groups of persons that linking a batch of donors merges, each sorted, the smallest id
/// (the person that stays) first. `claims` holds, for each donor linked, its own person and
/// the persons of every other donor sharing one of its keys. Persons joined through several
/// donors end in one group, as they would had the donors been linked one after another.
/// Pure.
pub fn person_merges(claims: &[(i64, Vec<i64>)]) -> Vec<Vec<i64>> {
    // Union-find over the persons named, each root the smallest id of its set.
    let mut parent: BTreeMap<i64, i64> = BTreeMap::new();
    fn root(parent: &mut BTreeMap<i64, i64>, person: i64) -> i64 {
        let mut at = *parent.entry(person).or_insert(person);
        while let Some(&up) = parent.get(&at).filter(|&&up| up != at) {
            at = up;
        }
        parent.insert(person, at);
        at
    }
    for (own, shared) in claims {
        for &other in shared {
            let (a, b) = (root(&mut parent, *own), root(&mut parent, other));
            let (low, high) = (a.min(b), a.max(b));
            parent.insert(high, low);
        }
        root(&mut parent, *own);
    }
    let persons: Vec<i64> = parent.keys().copied().collect();
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for person in persons {
        let at = root(&mut parent, person);
        groups.entry(at).or_default().push(person);
    }
    groups.into_values().filter(|g| g.len() > 1).collect()
}

/// The donors of a batch of gifts, one per (campaign, identity key), in the order they first
/// appear; a donor named twice takes each detail from the first gift that gives it, as
/// recording the gifts one after another would. Pure.
pub fn distinct_donors<'a>(
    gifts: impl Iterator<Item = (crate::ids::CampaignId, &'a NewDonor)>,
) -> Vec<(crate::ids::CampaignId, NewDonor)> {
    let mut donors: Vec<(crate::ids::CampaignId, NewDonor)> = Vec::new();
    for (campaign, donor) in gifts {
        let known = donors
            .iter_mut()
            .find(|(c, d)| *c == campaign && d.identity_key == donor.identity_key);
        match known {
            None => donors.push((campaign, donor.clone())),
            Some((_, first)) => {
                let (p, more) = (&mut first.payer, &donor.payer);
                let fill = |field: &mut Option<String>, from: &Option<String>| {
                    if field.is_none() {
                        field.clone_from(from);
                    }
                };
                fill(&mut p.name, &more.name);
                fill(&mut p.email, &more.email);
                fill(&mut p.address.line1, &more.address.line1);
                fill(&mut p.address.line2, &more.address.line2);
                fill(&mut p.address.city, &more.address.city);
                fill(&mut p.address.postal_code, &more.address.postal_code);
                fill(&mut p.address.state, &more.address.state);
                fill(&mut p.address.country, &more.address.country);
            }
        }
    }
    donors
}

#[cfg(test)]
mod tests {
    use super::person_merges;

    #[test]
    fn persons_sharing_keys_merge_into_the_smallest() {
        assert_eq!(person_merges(&[(5, vec![])]), Vec::<Vec<i64>>::new());
        assert_eq!(person_merges(&[(5, vec![5])]), Vec::<Vec<i64>>::new());
        assert_eq!(person_merges(&[(5, vec![3, 9])]), vec![vec![3, 5, 9]]);
        // Chained through two donors of one batch: 7 joins 2 through 4.
        assert_eq!(
            person_merges(&[(4, vec![2]), (7, vec![4]), (10, vec![11])]),
            vec![vec![2, 4, 7], vec![10, 11]]
        );
        assert_eq!(
            person_merges(&[(9, vec![8]), (6, vec![5]), (8, vec![5])]),
            vec![vec![5, 6, 8, 9]]
        );
    }
}

//! `screen()` over the shipped rule packs: a table of cases per rule of every pack, and the
//! tricky cases of the reference (a refund that frees room, the day after the period, cash at
//! the limit and one cent above, primary and general, a chargeback then a new gift).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::NaiveDate;
use obole::compliance::pack::{Attestation, DonorField};
use obole::compliance::screen::{Donor, DonorKind, Election, Gift, Method, PastGift};
use obole::compliance::{screen, Decision, Packs, RulePack, Verdict};
use obole::money::{Currency, Money};

fn pack(id: &str) -> RulePack {
    Packs::embedded().unwrap().get(id).unwrap().clone()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn eur(text: &str) -> Money {
    Money::parse(text, Currency::parse("EUR").unwrap()).unwrap()
}

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::parse("USD").unwrap()).unwrap()
}

/// A French donor who has said everything the French packs ask.
fn french_donor() -> Donor {
    Donor {
        kind: Some(DonorKind::NaturalPerson),
        nationality: Some("FR".into()),
        residence: Some("FR".into()),
        attestations: [Attestation::NaturalPerson, Attestation::OwnFunds].into(),
        known: [DonorField::Name, DonorField::Address].into(),
    }
}

fn us_donor() -> Donor {
    Donor {
        kind: Some(DonorKind::NaturalPerson),
        nationality: Some("US".into()),
        residence: Some("US".into()),
        attestations: [
            Attestation::CitizenOrPermanentResident,
            Attestation::OwnFunds,
            Attestation::NotFederalContractor,
            Attestation::OwnCard,
        ]
        .into(),
        known: [
            DonorField::Name,
            DonorField::Address,
            DonorField::Employer,
            DonorField::Occupation,
        ]
        .into(),
    }
}

const PRESIDENTIELLE: &str = "2027-presidentielle";

fn presidentielle() -> Option<Election> {
    Some(Election {
        key: PRESIDENTIELLE.into(),
        period: Some((day("2026-10-01"), day("2027-05-09"))),
    })
}

fn fr_gift(amount: &str, date: &str, method: Method) -> Gift {
    Gift {
        amount: eur(amount),
        date: day(date),
        method,
        election: presidentielle(),
    }
}

fn fr_past(amount: &str, date: &str) -> PastGift {
    PastGift {
        amount: eur(amount),
        date: day(date),
        method: Method::Card,
        election: Some(PRESIDENTIELLE.into()),
        to_this_campaign: true,
    }
}

fn us_gift(amount: &str, election: &str, method: Method) -> Gift {
    Gift {
        amount: usd(amount),
        date: day("2026-05-01"),
        method,
        election: Some(Election {
            key: election.into(),
            period: None,
        }),
    }
}

fn us_past(amount: &str, election: &str, method: Method) -> PastGift {
    PastGift {
        amount: usd(amount),
        date: day("2026-03-01"),
        method,
        election: Some(election.into()),
        to_this_campaign: true,
    }
}

/// One case of a table: what it shows, the donor, their history, the gift, and the
/// expected [`outcome`].
type Row<'a> = (&'a str, &'a Donor, Vec<PastGift>, Gift, Outcome<'a>);
type Outcome<'a> = (&'a str, Option<&'a str>);

/// The verdict's name and the deciding rule, the two things every row checks.
fn outcome(decision: &Decision) -> Outcome<'_> {
    let verdict = match decision.verdict {
        Verdict::Accept => "accept",
        Verdict::AcceptPart { .. } => "accept_part",
        Verdict::Refuse { .. } => "refuse",
        Verdict::Hold { .. } => "hold",
    };
    (verdict, decision.rule.as_deref())
}

#[test]
fn fr_candidate_every_rule() {
    let french = french_donor();
    let pack = pack("fr-candidate");
    let legal_person = Donor {
        kind: Some(DonorKind::LegalPerson),
        ..french_donor()
    };
    let unknown_kind = Donor {
        kind: None,
        ..french_donor()
    };
    let foreigner = Donor {
        nationality: Some("DE".into()),
        residence: Some("DE".into()),
        ..french_donor()
    };
    let german_in_lyon = Donor {
        nationality: Some("DE".into()),
        residence: Some("FR".into()),
        ..french_donor()
    };
    let french_abroad = Donor {
        nationality: Some("FR".into()),
        residence: Some("CA".into()),
        ..french_donor()
    };
    let unknown_country = Donor {
        nationality: None,
        residence: Some("BE".into()),
        ..french_donor()
    };
    let unsworn = Donor {
        attestations: [Attestation::NaturalPerson].into(),
        ..french_donor()
    };
    let card = |amount: &str| fr_gift(amount, "2027-03-01", Method::Card);
    let no_period = Gift {
        election: Some(Election {
            key: PRESIDENTIELLE.into(),
            period: None,
        }),
        ..card("10.00")
    };
    let rows: Vec<Row> = vec![
        (
            "a small card gift",
            &french,
            vec![],
            card("50.00"),
            ("accept", None),
        ),
        (
            "a legal person",
            &legal_person,
            vec![],
            card("50.00"),
            ("refuse", Some("natural-persons-only")),
        ),
        (
            "a giver not known to be a person",
            &unknown_kind,
            vec![],
            card("50.00"),
            ("hold", Some("natural-persons-only")),
        ),
        (
            "neither French nor resident",
            &foreigner,
            vec![],
            card("50.00"),
            ("refuse", Some("nationality-or-residence")),
        ),
        (
            "a German living in France",
            &german_in_lyon,
            vec![],
            card("50.00"),
            ("accept", None),
        ),
        (
            "a French national abroad",
            &french_abroad,
            vec![],
            card("50.00"),
            ("accept", None),
        ),
        (
            "nationality unknown",
            &unknown_country,
            vec![],
            card("50.00"),
            ("hold", Some("nationality-or-residence")),
        ),
        (
            "no sworn statement of own funds",
            &unsworn,
            vec![],
            card("50.00"),
            ("hold", Some("sworn-statement")),
        ),
        (
            "exactly the cap",
            &french,
            vec![],
            card("4600.00"),
            ("accept", None),
        ),
        (
            "one cent over the cap",
            &french,
            vec![],
            card("4600.01"),
            ("accept_part", Some("cap-per-election")),
        ),
        (
            "over the cap with earlier gifts",
            &french,
            vec![fr_past("4500.00", "2026-12-01")],
            card("200.00"),
            ("accept_part", Some("cap-per-election")),
        ),
        (
            "at the cap already",
            &french,
            vec![fr_past("4600.00", "2026-12-01")],
            card("1.00"),
            ("refuse", Some("cap-per-election")),
        ),
        (
            "cash at €150",
            &french,
            vec![],
            fr_gift("150.00", "2027-03-01", Method::Cash),
            ("accept", None),
        ),
        (
            "cash at €150.01",
            &french,
            vec![],
            fr_gift("150.01", "2027-03-01", Method::Cash),
            ("refuse", Some("cash-per-gift")),
        ),
        (
            "a cheque above €150",
            &french,
            vec![],
            fr_gift("500.00", "2027-03-01", Method::Cheque),
            ("accept", None),
        ),
        (
            "the first day of the period",
            &french,
            vec![],
            fr_gift("20.00", "2026-10-01", Method::Card),
            ("accept", None),
        ),
        (
            "the last day of the period",
            &french,
            vec![],
            fr_gift("20.00", "2027-05-09", Method::Card),
            ("accept", None),
        ),
        (
            "the day after the period",
            &french,
            vec![],
            fr_gift("20.00", "2027-05-10", Method::Card),
            ("refuse", Some("financing-period")),
        ),
        (
            "the day before the period",
            &french,
            vec![],
            fr_gift("20.00", "2026-09-30", Method::Card),
            ("refuse", Some("financing-period")),
        ),
        (
            "no period set",
            &french,
            vec![],
            no_period,
            ("hold", Some("financing-period")),
        ),
    ];
    for (case, donor, history, gift, expected) in rows {
        let decision = screen(&pack, donor, &history, &gift).unwrap();
        assert_eq!(outcome(&decision), expected, "{case}: {decision:?}");
        assert_eq!(
            (decision.pack.as_str(), decision.pack_version),
            ("fr-candidate", 1)
        );
    }
}

#[test]
fn an_excess_names_what_is_accepted_what_is_refunded_and_the_room() {
    let decision = screen(
        &pack("fr-candidate"),
        &french_donor(),
        &[fr_past("4500.00", "2026-12-01")],
        &fr_gift("200.00", "2027-03-01", Method::Card),
    )
    .unwrap();
    assert_eq!(
        decision.verdict,
        Verdict::AcceptPart {
            accepted: eur("100.00"),
            excess: eur("100.00")
        }
    );
    assert_eq!(decision.room, Some(eur("100.00")));
    assert!(decision.source.unwrap().contains("L52-8"));
    // France sets no remedy period in the pack: the excess is simply refunded.
    assert_eq!(decision.remedy_by, None);

    let full = screen(
        &pack("fr-candidate"),
        &french_donor(),
        &[fr_past("4600.00", "2026-12-01")],
        &fr_gift("1.00", "2027-03-01", Method::Card),
    )
    .unwrap();
    assert!(
        matches!(&full.verdict, Verdict::Refuse { reason } if reason.contains("2027-03-01")),
        "{full:?}"
    );
    assert_eq!(full.room, Some(eur("0.00")));
}

#[test]
fn a_refund_frees_room_under_the_cap_and_a_chargeback_then_a_new_gift_counts_once() {
    let pack = pack("fr-candidate");
    let gift = fr_gift("300.00", "2027-03-01", Method::Card);
    // 4,600 given, 300 of it refunded: the history carries the net 4,300.
    let refunded = [fr_past("4300.00", "2026-12-01")];
    let decision = screen(&pack, &french_donor(), &refunded, &gift).unwrap();
    assert_eq!(decision.verdict, Verdict::Accept);
    assert_eq!(decision.room, Some(eur("300.00")));
    // A 1,000 gift charged back nets to zero; the donor's new 1,000 gift has its room back.
    let charged_back = [
        fr_past("3600.00", "2026-11-01"),
        fr_past("0.00", "2026-12-01"),
    ];
    let again = fr_gift("1000.00", "2027-03-01", Method::Card);
    let decision = screen(&pack, &french_donor(), &charged_back, &again).unwrap();
    assert_eq!(decision.verdict, Verdict::Accept);
}

#[test]
fn the_cap_counts_only_gifts_for_its_election() {
    let pack = pack("fr-candidate");
    let history = [PastGift {
        election: Some("2022-legislatives".into()),
        ..fr_past("4600.00", "2026-11-01")
    }];
    let gift = fr_gift("4600.00", "2027-03-01", Method::Card);
    let decision = screen(&pack, &french_donor(), &history, &gift).unwrap();
    assert_eq!(decision.verdict, Verdict::Accept, "{decision:?}");
}

#[test]
fn a_later_gift_already_accepted_counts_whichever_webhook_came_first() {
    // The webhook of the 1 April gift was posted first; the 1 March gift, heard of later,
    // must not carry the donor past the cap.
    let pack = pack("fr-candidate");
    let history = [fr_past("4000.00", "2027-04-01")];
    let gift = fr_gift("1000.00", "2027-03-01", Method::Card);
    let decision = screen(&pack, &french_donor(), &history, &gift).unwrap();
    assert_eq!(
        decision.verdict,
        Verdict::AcceptPart {
            accepted: eur("600.00"),
            excess: eur("400.00")
        }
    );
}

#[test]
fn fr_candidate_caps_a_person_across_all_candidates_us_per_candidate() {
    let elsewhere = |past: PastGift| PastGift {
        to_this_campaign: false,
        ..past
    };
    // 4,000 given to another candidate of the same presidential election.
    let fr = screen(
        &pack("fr-candidate"),
        &french_donor(),
        &[elsewhere(fr_past("4000.00", "2027-01-01"))],
        &fr_gift("1000.00", "2027-03-01", Method::Card),
    )
    .unwrap();
    assert_eq!(fr.room, Some(eur("600.00")));
    assert_eq!(fr.rule.as_deref(), Some("cap-per-election"));
    // $3,500 to another House candidate leaves this one's room whole.
    let us = screen(
        &pack("us-federal-candidate-2025-2026"),
        &us_donor(),
        &[elsewhere(us_past("3500.00", "2026-primary", Method::Card))],
        &us_gift("3500.00", "2026-primary", Method::Card),
    )
    .unwrap();
    assert_eq!(us.verdict, Verdict::Accept, "{us:?}");
}

#[test]
fn a_held_gift_is_still_cut_to_the_cap() {
    // Nationality unknown: the gift waits for review, but never past the cap.
    let donor = Donor {
        nationality: None,
        residence: None,
        ..french_donor()
    };
    let decision = screen(
        &pack("fr-candidate"),
        &donor,
        &[fr_past("4500.00", "2027-01-01")],
        &fr_gift("300.00", "2027-03-01", Method::Card),
    )
    .unwrap();
    assert_eq!(
        decision.verdict,
        Verdict::AcceptPart {
            accepted: eur("100.00"),
            excess: eur("200.00")
        }
    );
    assert!(decision.review.unwrap().contains("national or a resident"));
}

#[test]
fn fr_party_caps_the_calendar_year_across_parties() {
    let pack = pack("fr-party");
    let party_gift = |amount: &str, date: &str| Gift {
        amount: eur(amount),
        date: day(date),
        method: Method::Transfer,
        election: None,
    };
    let past = |amount: &str, date: &str| PastGift {
        amount: eur(amount),
        date: day(date),
        method: Method::Transfer,
        election: None,
        to_this_campaign: false, // another party: the cap spans all of them
    };
    let rows = [
        (
            "within the year",
            vec![past("7000.00", "2027-02-01")],
            party_gift("500.00", "2027-11-30"),
            ("accept", None),
        ),
        (
            "over the year",
            vec![past("7000.00", "2027-02-01")],
            party_gift("600.00", "2027-11-30"),
            ("accept_part", Some("cap-per-year")),
        ),
        (
            "a new year starts afresh",
            vec![past("7500.00", "2026-12-31")],
            party_gift("7500.00", "2027-01-01"),
            ("accept", None),
        ),
        (
            "cash above €150",
            vec![],
            Gift {
                method: Method::Cash,
                ..party_gift("150.01", "2027-03-01")
            },
            ("refuse", Some("cash-per-gift")),
        ),
    ];
    for (case, history, gift, expected) in rows {
        let decision = screen(&pack, &french_donor(), &history, &gift).unwrap();
        assert_eq!(outcome(&decision), expected, "{case}: {decision:?}");
    }
    let company = Donor {
        kind: Some(DonorKind::LegalPerson),
        ..french_donor()
    };
    let decision = screen(&pack, &company, &[], &party_gift("10.00", "2027-03-01")).unwrap();
    assert_eq!(outcome(&decision), ("refuse", Some("natural-persons-only")));
}

#[test]
fn us_federal_every_rule() {
    let us = us_donor();
    let pack = pack("us-federal-candidate-2025-2026");
    let corporation = Donor {
        kind: Some(DonorKind::LegalPerson),
        ..us_donor()
    };
    let foreign_national = Donor {
        nationality: Some("CA".into()),
        attestations: BTreeSet::new(),
        ..us_donor()
    };
    let green_card = Donor {
        nationality: Some("MX".into()),
        ..us_donor()
    };
    let unattested_contractor = Donor {
        attestations: [
            Attestation::CitizenOrPermanentResident,
            Attestation::OwnFunds,
            Attestation::OwnCard,
        ]
        .into(),
        ..us_donor()
    };
    let anonymous = Donor {
        known: BTreeSet::new(),
        ..us_donor()
    };
    let card = |amount: &str| us_gift(amount, "2026-primary", Method::Card);
    let cash = |amount: &str| us_gift(amount, "2026-primary", Method::Cash);
    let rows: Vec<Row> = vec![
        ("a $27 gift", &us, vec![], card("27.00"), ("accept", None)),
        (
            "a corporation",
            &corporation,
            vec![],
            card("27.00"),
            ("refuse", Some("no-corporations")),
        ),
        (
            "a foreign national",
            &foreign_national,
            vec![],
            card("27.00"),
            ("refuse", Some("no-foreign-nationals")),
        ),
        (
            "a permanent resident",
            &green_card,
            vec![],
            card("27.00"),
            ("accept", None),
        ),
        (
            "no federal-contractor attestation",
            &unattested_contractor,
            vec![],
            card("27.00"),
            ("hold", Some("attestations")),
        ),
        (
            "exactly $3,500 for the primary",
            &us,
            vec![],
            card("3500.00"),
            ("accept", None),
        ),
        (
            "$3,500.01 for the primary",
            &us,
            vec![],
            card("3500.01"),
            ("accept_part", Some("cap-per-election")),
        ),
        (
            "the general is a separate election",
            &us,
            vec![us_past("3500.00", "2026-primary", Method::Card)],
            us_gift("3500.00", "2026-general", Method::Card),
            ("accept", None),
        ),
        (
            "the primary is full",
            &us,
            vec![us_past("3500.00", "2026-primary", Method::Card)],
            card("1.00"),
            ("refuse", Some("cap-per-election")),
        ),
        (
            "cash at $100",
            &us,
            vec![],
            cash("100.00"),
            ("accept", None),
        ),
        (
            "cash past $100 in the aggregate",
            &us,
            vec![us_past("60.00", "2026-primary", Method::Cash)],
            cash("50.00"),
            ("accept_part", Some("cash-aggregate")),
        ),
        (
            "anonymous at $50",
            &anonymous,
            vec![],
            cash("50.00"),
            ("accept", None),
        ),
        (
            "anonymous above $50",
            &anonymous,
            vec![],
            cash("75.00"),
            ("accept_part", Some("anonymous-per-gift")),
        ),
        (
            "no election named",
            &us,
            vec![],
            Gift {
                election: None,
                ..card("10.00")
            },
            ("hold", Some("cap-per-election")),
        ),
    ];
    for (case, donor, history, gift, expected) in rows {
        let decision = screen(&pack, donor, &history, &gift).unwrap();
        assert_eq!(outcome(&decision), expected, "{case}: {decision:?}");
    }
}

#[test]
fn us_itemization_above_200_in_the_cycle_names_missing_details() {
    let pack = pack("us-federal-candidate-2025-2026");
    let no_employer = Donor {
        known: [DonorField::Name, DonorField::Address].into(),
        ..us_donor()
    };
    let small = screen(
        &pack,
        &no_employer,
        &[],
        &us_gift("200.00", "2026-primary", Method::Card),
    )
    .unwrap();
    assert!(!small.itemize, "{small:?}");
    // The cycle counts the primary and the general together.
    let history = [us_past("150.00", "2026-primary", Method::Card)];
    let over = screen(
        &pack,
        &no_employer,
        &history,
        &us_gift("50.01", "2026-general", Method::Card),
    )
    .unwrap();
    assert!(over.itemize, "{over:?}");
    assert_eq!(
        over.missing,
        [DonorField::Employer, DonorField::Occupation].into()
    );
    assert_eq!(over.verdict, Verdict::Accept);
}

#[test]
fn a_us_excess_must_be_remedied_within_60_days() {
    let decision = screen(
        &pack("us-federal-candidate-2025-2026"),
        &us_donor(),
        &[us_past("3000.00", "2026-primary", Method::Card)],
        &us_gift("1000.00", "2026-primary", Method::Card),
    )
    .unwrap();
    assert_eq!(
        decision.verdict,
        Verdict::AcceptPart {
            accepted: usd("500.00"),
            excess: usd("500.00")
        }
    );
    assert_eq!(decision.remedy_by, Some(day("2026-06-30")));
}

#[test]
fn the_us_cap_is_not_in_force_outside_its_cycle() {
    let gift = Gift {
        date: day("2027-01-01"),
        ..us_gift("5000.00", "2028-primary", Method::Card)
    };
    let decision = screen(
        &pack("us-federal-candidate-2025-2026"),
        &us_donor(),
        &[],
        &gift,
    )
    .unwrap();
    assert_eq!(decision.verdict, Verdict::Accept, "{decision:?}");
    assert_eq!(decision.room, None);
}

#[test]
fn a_gift_in_another_currency_is_an_error_not_a_decision() {
    let gift = Gift {
        amount: usd("10.00"),
        ..fr_gift("10.00", "2027-03-01", Method::Card)
    };
    let error = screen(&pack("fr-candidate"), &french_donor(), &[], &gift).unwrap_err();
    assert!(error.to_string().contains("EUR"), "{error}");
}

#[test]
fn the_same_inputs_give_the_same_decision() {
    let pack = pack("fr-candidate");
    let history = [fr_past("4500.00", "2026-12-01")];
    let gift = fr_gift("200.00", "2027-03-01", Method::Card);
    let first = screen(&pack, &french_donor(), &history, &gift).unwrap();
    for _ in 0..3 {
        assert_eq!(
            screen(&pack, &french_donor(), &history, &gift).unwrap(),
            first
        );
    }
}

mod properties {
    //! Whatever the order and size of a person's gifts, the caps hold and are never
    //! over-cautious.
    use super::*;
    use proptest::prelude::*;

    const CAP_CENTS: i64 = 460_000;

    fn cents(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("EUR").unwrap())
    }

    /// A gift of `minor` cents on `offset` days into the financing period.
    fn gift(minor: i64, offset: u8) -> Gift {
        Gift {
            amount: cents(minor),
            date: day("2026-10-01") + chrono::Duration::days(i64::from(offset)),
            method: Method::Card,
            election: presidentielle(),
        }
    }

    proptest! {
        /// Gifts screened one after another, each accepted part joining the history (as the
        /// ledger would hold it), add up to exactly min(cap, what was offered); every
        /// decision splits its gift into accepted plus excess.
        #[test]
        fn a_stream_of_gifts_fills_the_cap_exactly(
            gifts in proptest::collection::vec((1i64..700_000, 0u8..200, any::<bool>()), 1..40)
        ) {
            let pack = pack("fr-candidate");
            let mut history: Vec<PastGift> = Vec::new();
            let mut offered = 0i64;
            for (minor, offset, here) in gifts {
                offered += minor;
                let g = gift(minor, offset);
                let decision = screen(&pack, &french_donor(), &history, &g).unwrap();
                let accepted = match decision.verdict {
                    Verdict::Accept => minor,
                    Verdict::AcceptPart { accepted, excess } => {
                        prop_assert_eq!(accepted.minor() + excess.minor(), minor);
                        prop_assert!(accepted.is_positive() && excess.is_positive());
                        accepted.minor()
                    }
                    Verdict::Refuse { .. } => 0,
                    Verdict::Hold { reason } => {
                        return Err(TestCaseError::fail(format!("held: {reason}")))
                    }
                };
                let given: i64 = history.iter().map(|p| p.amount.minor()).sum();
                prop_assert_eq!(decision.room.map(|r| r.minor()), Some((CAP_CENTS - given).max(0)));
                history.push(PastGift {
                    amount: cents(accepted),
                    date: g.date,
                    method: Method::Card,
                    election: Some(PRESIDENTIELLE.into()),
                    // Another candidate of the same election counts just the same.
                    to_this_campaign: here,
                });
            }
            let total: i64 = history.iter().map(|p| p.amount.minor()).sum();
            prop_assert_eq!(total, offered.min(CAP_CENTS));
        }

        /// Whatever the history (including nets already over the cap, as after a merge of
        /// two donors), a decision never accepts more than the room left.
        #[test]
        fn no_decision_accepts_past_the_cap(
            past in proptest::collection::vec(0i64..500_000, 0..10),
            minor in 1i64..1_000_000,
        ) {
            let pack = pack("fr-candidate");
            let history: Vec<PastGift> = past
                .iter()
                .map(|m| PastGift {
                    amount: cents(*m),
                    date: day("2026-11-01"),
                    method: Method::Card,
                    election: Some(PRESIDENTIELLE.into()),
                    to_this_campaign: true,
                })
                .collect();
            let decision = screen(&pack, &french_donor(), &history, &gift(minor, 60)).unwrap();
            let room = (CAP_CENTS - past.iter().sum::<i64>()).max(0);
            let accepted = match decision.verdict {
                Verdict::Accept => minor,
                Verdict::AcceptPart { accepted, .. } => accepted.minor(),
                _ => 0,
            };
            prop_assert!(accepted <= room);
            prop_assert_eq!(accepted, minor.min(room));
        }
    }
}

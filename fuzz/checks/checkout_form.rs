//! The donation form (`POST /donate/{slug}`): the body decoded into pairs exactly as axum's
//! `Form<Vec<(String, String)>>` does (`serde_urlencoded` over `form_urlencoded`), then
//! `checkout::form::Submitted::from_pairs`, the anti-forgery token's check, and `validate`
//! against the form of every embedded rule pack, on dates with and without its rules.
//!
//! Input: the raw `application/x-www-form-urlencoded` body.
//! Checks: no panic; what is kept of each field is bounded; a valid gift is within the
//! form's bounds, in its currency, with the fields the form requires; a refused one names
//! at least one problem.
//!
//! `check` is the whole target: cargo-fuzz runs it under coverage guidance
//! (`fuzz/fuzz_targets/`, `scripts/fuzz`), CI on the seeds and their mutations
//! (`tests/fuzz_replay.rs`).

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use obole::checkout::form::{validate, FormSpec, Submitted, EMAIL_MAX, TEXT_MAX};
use obole::checkout::guard::FormKey;
use obole::checkout::text::{notices, Lang};
use obole::compliance::Packs;

/// The browser's cookie (the seeds hold a token issued for it at `now`).
const NONCE: &str = "0123456789abcdef0123456789abcdef";

struct Fixture {
    /// (pack id, the form on one date)
    forms: Vec<(String, FormSpec)>,
    key: FormKey,
    now: DateTime<Utc>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let packs = Packs::embedded().expect("the embedded packs load");
        let dates = [(2026, 6, 1), (2027, 6, 1), (1990, 1, 1)]
            .map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).expect("a date"));
        let mut forms = Vec::new();
        for id in packs.ids() {
            let pack = packs.get(id).expect("a listed pack");
            for date in dates {
                forms.push((id.to_owned(), FormSpec::for_pack(pack, date)));
            }
        }
        Fixture {
            forms,
            key: FormKey::new(Some("fuzz-form-secret-of-thirty-two-bytes")).expect("a key"),
            now: DateTime::from_timestamp(1_764_012_345, 0).expect("a time"),
        }
    })
}

pub fn check(data: &[u8]) {
    let fixture = fixture();
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return; // a 400, before the form is read
    };
    let form = Submitted::from_pairs(&pairs);
    for kept in [
        &form.amount_choice,
        &form.amount_other,
        &form.name,
        &form.email,
        &form.address_line1,
        &form.postal_code,
        &form.city,
        &form.country,
        &form.nationality,
        &form.residence,
        &form.employer,
        &form.occupation,
        &form.form_token,
        &form.lang,
    ] {
        assert!(kept.chars().count() <= EMAIL_MAX + 1);
    }
    assert!(form.attested.len() <= 16);

    // The token is checked before anything else (a forged one gets the form again).
    let _ = fixture
        .key
        .check("demo", NONCE, &form.form_token, fixture.now);

    let lang = Lang::parse(&form.lang).unwrap_or(Lang::Fr);
    for (id, spec) in &fixture.forms {
        match validate(spec, &form) {
            Ok(gift) => {
                assert!(spec.minimum <= gift.amount && gift.amount <= spec.maximum);
                assert_eq!(gift.amount.currency(), spec.currency);
                let _ = lang.money(gift.amount);
                let name = gift.payer.name.as_deref().expect("a name is required");
                assert!(!name.is_empty() && name.chars().count() <= TEXT_MAX);
                assert!(gift.payer.email.as_deref().is_some_and(|e| e.contains('@')));
                for attestation in &spec.attestations {
                    assert!(gift.declaration.attestations.contains(attestation));
                }
                if spec.employer_and_occupation {
                    assert!(gift.declaration.employer.is_some());
                    assert!(gift.declaration.occupation.is_some());
                }
            }
            Err(problems) => assert!(!problems.is_empty()),
        }
        let _ = notices(lang, spec, id);
    }
}

//! The rule-pack loader (`compliance::pack::RulePack::parse`): a deployment's own packs are
//! read from `OBOLE_RULES_DIR` at start, so any text a file may hold.
//!
//! Input: the file's text (the seeds are the shipped packs, `compliance/*.toml`). The file is
//! named after the `id` the text claims, so a pack gets past the file-name check and its
//! rules are read.
//! Checks: no panic; a pack that loads keeps the invariants `pack.rs` states (version ≥ 1,
//! unique rule ids, `from` before `until`, positive amounts in the pack's currency, one cap
//! per scope), is refused under another file name, and gives a form on any date.
//!
//! `check` is the whole target: cargo-fuzz runs it under coverage guidance
//! (`fuzz/fuzz_targets/`, `scripts/fuzz`), CI on the seeds and their mutations
//! (`tests/fuzz_replay.rs`).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use obole::checkout::form::FormSpec;
use obole::checkout::text::{notices, refusal, Lang};
use obole::compliance::pack::{Check, RulePack};
use obole::money::Money;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_to_string refuses it first
    };
    let id = toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|table| table.get("id")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    let file = format!("compliance/{id}.toml");
    let Ok(pack) = RulePack::parse(&file, text) else {
        return;
    };
    assert_eq!(pack.id, id);
    assert!(pack.version >= 1);
    assert!(!pack.title.trim().is_empty());
    assert!(!pack.rules.is_empty());
    let mut ids = BTreeSet::new();
    let mut caps = BTreeSet::new();
    let positive = |money: &Money| money.is_positive() && money.currency() == pack.currency;
    for rule in &pack.rules {
        assert!(ids.insert(rule.id.as_str()), "rule {} twice", rule.id);
        assert!(!rule.source.trim().is_empty());
        assert!(rule
            .effective_until
            .is_none_or(|until| rule.effective_from < until));
        match &rule.check {
            Check::Cap { limit, scope, .. } => {
                assert!(positive(limit));
                assert!(caps.insert(*scope), "two caps over {scope:?}");
            }
            Check::CashAggregate { limit, .. }
            | Check::CashPerGift { limit }
            | Check::AnonymousPerGift { limit } => assert!(positive(limit)),
            Check::Itemization { threshold, .. } => assert!(positive(threshold)),
            Check::ExcessRemedy { within_days } => assert!(*within_days >= 1),
            _ => {}
        }
        for lang in [Lang::Fr, Lang::En] {
            let _ = refusal(lang, Some(&rule.check));
        }
    }
    if id != "other" {
        assert!(RulePack::parse("other.toml", text).is_err());
    }
    let _ = pack.caps_per_election();
    let mut dates: Vec<NaiveDate> = pack.rules.iter().map(|r| r.effective_from).collect();
    dates.extend([NaiveDate::MIN, NaiveDate::MAX]);
    for date in dates {
        let _ = pack.rules_on(date).count();
        let spec = FormSpec::for_pack(&pack, date);
        for lang in [Lang::Fr, Lang::En] {
            let _ = notices(lang, &spec, &pack.title);
        }
    }
}

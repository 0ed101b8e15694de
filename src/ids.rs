//! Typed identifiers. Database ids are opaque integers wrapped so that an entry id can never
//! be passed where an account id is expected; text identifiers are validated once, here.

use std::fmt;

use serde::Serialize;

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

int_id!(
    /// A campaign's row id.
    CampaignId
);
int_id!(
    /// A ledger account's row id.
    AccountId
);
int_id!(
    /// A journal entry's row id (not its position in the seal chain: see `SealSequence`).
    EntryId
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} characters long; at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} {value:?} may contain only {allowed}")]
    BadCharacters {
        what: &'static str,
        value: String,
        allowed: &'static str,
    },
}

/// The key that makes a ledger write idempotent, e.g. a Stripe balance-transaction id
/// (`stripe:txn_1P…`). Printable ASCII without spaces, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const LEN_MAX: usize = 255;

    pub fn parse(value: impl Into<String>) -> Result<IdempotencyKey, IdError> {
        let value = value.into();
        check_text(
            "idempotency key",
            &value,
            Self::LEN_MAX,
            |c| c.is_ascii_graphic(),
            "printable ASCII characters without spaces",
        )?;
        Ok(IdempotencyKey(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A campaign's URL name: `dupont-2027`. Lower-case ASCII letters, digits and hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub const LEN_MAX: usize = 63;

    pub fn parse(value: impl Into<String>) -> Result<Slug, IdError> {
        let value = value.into();
        check_text(
            "campaign slug",
            &value,
            Self::LEN_MAX,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            "lower-case letters a-z, digits and '-'",
        )?;
        if value.starts_with('-') || value.ends_with('-') {
            return Err(IdError::BadCharacters {
                what: "campaign slug",
                value,
                allowed: "lower-case letters a-z, digits and '-' (not at either end)",
            });
        }
        Ok(Slug(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

fn check_text(
    what: &'static str,
    value: &str,
    max: usize,
    allowed_char: impl Fn(char) -> bool,
    allowed: &'static str,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    let len = value.chars().count();
    if len > max {
        return Err(IdError::TooLong { what, len, max });
    }
    if !value.chars().all(allowed_char) {
        return Err(IdError::BadCharacters {
            what,
            value: value.to_owned(),
            allowed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lower_case_words() {
        assert!(Slug::parse("dupont-2027").is_ok());
        for bad in [
            "",
            "Dupont",
            "dupont 2027",
            "-x",
            "x-",
            "élan",
            &"a".repeat(64),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn idempotency_keys_are_printable_ascii() {
        assert!(IdempotencyKey::parse("stripe:txn_1PXa2b").is_ok());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("k".repeat(256)).is_err());
    }
}

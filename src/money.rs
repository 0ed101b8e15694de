//! Exact money: an `i64` count of a currency's minor units plus the currency.
//!
//! Invariants:
//! - A [`Money`] is only ever built from integer minor units or from a decimal string/`Decimal`
//!   that has no more fraction digits than its currency allows: parsing never rounds.
//! - Arithmetic is checked: overflow and mixing currencies are errors, never wrap-around.
//! - Computations that create fractions (percentages, splits) go through `rust_decimal` and end
//!   with [`ROUNDING`], the one named rounding rule of the crate.
//! - There is no floating point here, and clippy (`clippy.toml`) refuses `f32`/`f64` crate-wide.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// The rounding rule for every computed amount: half to even ("banker's rounding"), which
/// does not drift upwards when many small amounts are rounded, as in fee or tax-reduction
/// totals over thousands of gifts.
pub const ROUNDING: RoundingStrategy = RoundingStrategy::MidpointNearestEven;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(
        "unknown or unsupported currency {0:?} (expected an ISO 4217 code such as EUR, USD or JPY)"
    )]
    UnknownCurrency(String),
    #[error("{0:?} is not a decimal amount (expected digits with an optional '.' and fraction, e.g. 25.00)")]
    NotANumber(String),
    #[error("{amount} has more decimal places than {currency} allows ({exponent})")]
    TooPrecise {
        amount: String,
        currency: Currency,
        exponent: u32,
    },
    #[error("amount {0} is out of range")]
    Overflow(String),
    #[error("cannot combine {0} and {1}: different currencies")]
    CurrencyMismatch(Currency, Currency),
}

/// An ISO 4217 currency this ledger can hold, with its number of minor-unit digits.
///
/// The exponents follow Stripe's list (zero-decimal currencies such as JPY and three-decimal
/// ones such as KWD), because Stripe reports amounts in exactly these minor units.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    /// Always one of the codes in the tables below.
    code: &'static str,
    exponent: u8,
}

/// Currencies whose smallest unit is the main unit (Stripe: "zero-decimal currencies").
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];
/// Currencies with three minor-unit digits.
const THREE_DECIMAL: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];
/// Two-decimal currencies we accept. A closed list: a typo such as "EUE" must be an error.
const TWO_DECIMAL: &[&str] = &[
    "AED", "AUD", "BGN", "BRL", "CAD", "CHF", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS",
    "INR", "MAD", "MXN", "NOK", "NZD", "PLN", "RON", "SEK", "SGD", "USD", "ZAR",
];

impl Currency {
    pub const EUR: Currency = Currency {
        code: "EUR",
        exponent: 2,
    };
    pub const USD: Currency = Currency {
        code: "USD",
        exponent: 2,
    };
    pub const JPY: Currency = Currency {
        code: "JPY",
        exponent: 0,
    };

    /// Parses an ISO code, case-insensitively (Stripe sends lower case: "eur").
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let wanted = code.trim();
        [(TWO_DECIMAL, 2), (ZERO_DECIMAL, 0), (THREE_DECIMAL, 3)]
            .into_iter()
            .find_map(|(table, exponent)| {
                table
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(wanted))
                    .map(|known| Currency {
                        code: known,
                        exponent,
                    })
            })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of digits after the decimal point in this currency's minor unit.
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// An exact amount of one currency. Positive, negative or zero; the ledger gives the sign
/// its meaning (debit positive, credit negative). The ordering (by minor units, then
/// currency) exists for canonical sorting, not for comparing amounts across currencies.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub const fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub const fn zero(currency: Currency) -> Money {
        Money::from_minor(0, currency)
    }

    /// Converts a decimal amount in major units ("25.50") into minor units. Refuses, rather
    /// than rounds, an amount finer than the currency's minor unit.
    pub fn from_decimal(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let exponent = currency.exponent();
        let normalized = amount.normalize();
        if normalized.scale() > exponent {
            return Err(MoneyError::TooPrecise {
                amount: amount.to_string(),
                currency,
                exponent,
            });
        }
        let scaled = normalized
            .checked_mul(Decimal::from(10_i64.pow(exponent)))
            .ok_or_else(|| MoneyError::Overflow(amount.to_string()))?;
        let minor = i64::try_from(scaled.mantissa() / 10_i128.pow(scaled.scale()))
            .map_err(|_| MoneyError::Overflow(amount.to_string()))?;
        Ok(Money::from_minor(minor, currency))
    }

    /// Parses a plain decimal string such as `"200000.00"`, `"-3.5"` or `"1000"`.
    /// Exponents, thousands separators and currency symbols are refused.
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let trimmed = amount.trim();
        let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
        let well_formed = !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
            && digits.chars().filter(|&c| c == '.').count() <= 1
            && !digits.starts_with('.')
            && !digits.ends_with('.');
        if !well_formed {
            return Err(MoneyError::NotANumber(amount.to_owned()));
        }
        let decimal = Decimal::from_str_exact(trimmed)
            .map_err(|_| MoneyError::Overflow(amount.to_owned()))?;
        Money::from_decimal(decimal, currency)
    }

    pub const fn minor(&self) -> i64 {
        self.minor
    }

    pub const fn currency(&self) -> Currency {
        self.currency
    }

    pub const fn is_zero(&self) -> bool {
        self.minor == 0
    }

    pub const fn is_positive(&self) -> bool {
        self.minor > 0
    }

    /// The amount in major units, exactly, with the currency's number of decimals.
    pub fn to_decimal(&self) -> Decimal {
        Decimal::from_i128_with_scale(i128::from(self.minor), self.currency.exponent())
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::from_minor(minor, self.currency))
            .ok_or_else(|| MoneyError::Overflow(format!("{self} + {other}")))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.minor
            .checked_sub(other.minor)
            .map(|minor| Money::from_minor(minor, self.currency))
            .ok_or_else(|| MoneyError::Overflow(format!("{self} - {other}")))
    }

    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        self.minor
            .checked_neg()
            .map(|minor| Money::from_minor(minor, self.currency))
            .ok_or_else(|| MoneyError::Overflow(format!("-({self})")))
    }

    /// `rate` of this amount (e.g. 0.66 for the French 66 % tax reduction), rounded to the
    /// minor unit with [`ROUNDING`].
    pub fn percentage(&self, rate: Decimal) -> Result<Money, MoneyError> {
        let product = self
            .to_decimal()
            .checked_mul(rate)
            .ok_or_else(|| MoneyError::Overflow(format!("{self} × {rate}")))?;
        let rounded = product.round_dp_with_strategy(self.currency.exponent(), ROUNDING);
        Money::from_decimal(rounded, self.currency)
    }

    /// This amount shared into `parts` (an average), rounded to the minor unit with
    /// [`ROUNDING`].
    pub fn divided_by(&self, parts: u64) -> Result<Money, MoneyError> {
        if parts == 0 {
            return Err(MoneyError::Overflow(format!("{self} / 0")));
        }
        let quotient = self
            .to_decimal()
            .checked_div(Decimal::from(parts))
            .ok_or_else(|| MoneyError::Overflow(format!("{self} / {parts}")))?;
        Money::from_decimal(
            quotient.round_dp_with_strategy(self.currency.exponent(), ROUNDING),
            self.currency,
        )
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    /// `"200000.00 EUR"`, `"1500 JPY"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal(), self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

/// JSON shape of an amount: `{"amount": "200000.00", "currency": "EUR"}`; the amount is a
/// decimal string so that no JSON reader turns it into a float.
impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = s.serialize_struct("Money", 2)?;
        state.serialize_field("amount", &self.to_decimal().to_string())?;
        state.serialize_field("currency", &self.currency)?;
        state.end()
    }
}

/// Reads the shape [`Serialize`] writes; an amount with more decimals than its currency has
/// is refused, never rounded.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Shape {
            amount: String,
            currency: Currency,
        }
        let shape = Shape::deserialize(d)?;
        Money::parse(&shape.amount, shape.currency).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_exactly_and_refuses_extra_decimals() {
        let m = Money::parse("4600.01", Currency::EUR).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1.001","currency":"EUR"}"#).is_err());
    }

    #[test]
    fn parses_and_formats_two_decimal_amounts() {
        let m = Money::parse("200000.00", Currency::EUR).unwrap();
        assert_eq!(m.minor(), 20_000_000);
        assert_eq!(m.to_string(), "200000.00 EUR");
        assert_eq!(
            Money::parse("4600", Currency::EUR).unwrap().minor(),
            460_000
        );
        assert_eq!(Money::parse("-3.5", Currency::EUR).unwrap().minor(), -350);
    }

    #[test]
    fn zero_decimal_currencies_have_no_fraction() {
        let yen = Money::parse("1500", Currency::JPY).unwrap();
        assert_eq!(yen.minor(), 1500);
        assert_eq!(yen.to_string(), "1500 JPY");
        assert!(matches!(
            Money::parse("1500.5", Currency::JPY),
            Err(MoneyError::TooPrecise { .. })
        ));
    }

    #[test]
    fn three_decimal_currencies_keep_three_digits() {
        let kwd = Currency::parse("kwd").unwrap();
        assert_eq!(Money::parse("1.234", kwd).unwrap().minor(), 1234);
        assert_eq!(Money::from_minor(1234, kwd).to_string(), "1.234 KWD");
    }

    #[test]
    fn parsing_refuses_rather_than_rounds() {
        assert!(matches!(
            Money::parse("150.001", Currency::EUR),
            Err(MoneyError::TooPrecise { .. })
        ));
        // Trailing zeros beyond the exponent are not extra precision.
        assert_eq!(
            Money::parse("150.0100", Currency::EUR).unwrap().minor(),
            15001
        );
        for bad in [
            "", "-", "1e3", "1,000.00", "€10", "10.", ".5", "1.2.3", "NaN", " - 1",
        ] {
            assert!(
                Money::parse(bad, Currency::EUR).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(matches!(
            Money::parse("99999999999999999999", Currency::EUR),
            Err(MoneyError::Overflow(_))
        ));
    }

    #[test]
    fn unknown_currencies_are_refused() {
        assert!(Currency::parse("EUE").is_err());
        assert!(Currency::parse("").is_err());
        assert_eq!(Currency::parse(" usd ").unwrap(), Currency::USD);
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::from_minor(i64::MAX, Currency::EUR);
        assert!(a.checked_add(Money::from_minor(1, Currency::EUR)).is_err());
        assert!(Money::from_minor(i64::MIN, Currency::EUR)
            .checked_neg()
            .is_err());
        assert!(matches!(
            Money::from_minor(1, Currency::EUR).checked_add(Money::from_minor(1, Currency::USD)),
            Err(MoneyError::CurrencyMismatch(..))
        ));
    }

    #[test]
    fn percentages_round_half_to_even() {
        // 66 % of 0.25 EUR is 0.165 → 0.16 (half to even); of 0.75 EUR is 0.495 → 0.50.
        let rate = Decimal::new(66, 2);
        assert_eq!(
            Money::parse("0.25", Currency::EUR)
                .unwrap()
                .percentage(rate)
                .unwrap()
                .minor(),
            16
        );
        assert_eq!(
            Money::parse("0.75", Currency::EUR)
                .unwrap()
                .percentage(rate)
                .unwrap()
                .minor(),
            50
        );
        assert_eq!(
            Money::parse("100", Currency::EUR)
                .unwrap()
                .percentage(rate)
                .unwrap()
                .minor(),
            6600
        );
    }

    #[test]
    fn json_amounts_are_decimal_strings() {
        let json = serde_json::to_string(&Money::from_minor(12_345, Currency::USD)).unwrap();
        assert_eq!(json, r#"{"amount":"123.45","currency":"USD"}"#);
    }
}

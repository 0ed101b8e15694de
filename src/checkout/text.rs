//! The donor's pages in French and in English: every label, message and legal notice, and
//! amounts written the way each language writes them ("4 600,00 €", "$3,500.00").
//!
//! Invariants: every text exists in both languages (one struct, one value per language, so a
//! missing translation does not compile); the legal texts quote the rule they come from.

use super::form::FormSpec;
use crate::compliance::pack::{Attestation, Check, Scope};
use crate::money::Money;

/// The languages the donor pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// `fr` or `en`; anything else is `None`.
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn words(self) -> &'static Words {
        match self {
            Lang::Fr => &FRENCH,
            Lang::En => &ENGLISH,
        }
    }

    /// The attestation as the donor ticks it.
    pub fn attestation(self, attestation: Attestation) -> &'static str {
        use Attestation::*;
        match (self, attestation) {
            (Lang::Fr, NaturalPerson) => "Je certifie que ce don est fait par moi, personne physique, et non par une personne morale (entreprise, association, syndicat…) (art. L. 52-8 du code électoral).",
            (Lang::Fr, OwnFunds) => "Je certifie que ce don provient de mes fonds personnels et non de ceux d'un tiers.",
            (Lang::Fr, CitizenOrPermanentResident) => "Je certifie être citoyen des États-Unis ou résident permanent légal.",
            (Lang::Fr, NotFederalContractor) => "Je certifie ne pas être un contractant du gouvernement fédéral.",
            (Lang::Fr, OwnCard) => "Je certifie payer avec ma carte personnelle, et non celle d'une entreprise ou d'un tiers.",
            (Lang::En, NaturalPerson) => "I am making this contribution as an individual, not on behalf of a corporation, union or other organisation.",
            (Lang::En, OwnFunds) => "This contribution is made from my own funds, and not those of another person.",
            (Lang::En, CitizenOrPermanentResident) => "I am a U.S. citizen or a lawfully admitted permanent resident (i.e., green card holder) (52 U.S.C. 30121).",
            (Lang::En, NotFederalContractor) => "I am not a federal contractor (52 U.S.C. 30119).",
            (Lang::En, OwnCard) => "I am making this contribution with my own personal card, not a corporate or business card or a card issued to another person.",
        }
    }

    /// An amount as this language writes it: `4 600,00 €`, `€25.00`, `$3,500.00`.
    pub fn money(self, money: Money) -> String {
        let decimal = money.to_decimal();
        let text = format!("{:.*}", money.currency().exponent() as usize, decimal.abs());
        let (units, cents) = match text.split_once('.') {
            Some((units, cents)) => (units, Some(cents)),
            None => (text.as_str(), None),
        };
        let separator = match self {
            Lang::Fr => '\u{202f}',
            Lang::En => ',',
        };
        let mut grouped = String::new();
        for (i, digit) in units.chars().enumerate() {
            if i > 0 && (units.len() - i) % 3 == 0 {
                grouped.push(separator);
            }
            grouped.push(digit);
        }
        let sign = if decimal.is_sign_negative() && !money.is_zero() {
            "-"
        } else {
            ""
        };
        let code = money.currency().to_string();
        let symbol = match code.as_str() {
            "EUR" => "€",
            "USD" => "$",
            "GBP" => "£",
            _ => code.as_str(),
        };
        match (self, cents) {
            (Lang::Fr, Some(cents)) => format!("{sign}{grouped},{cents}\u{a0}{symbol}"),
            (Lang::Fr, None) => format!("{sign}{grouped}\u{a0}{symbol}"),
            (Lang::En, Some(cents)) => format!("{sign}{symbol}{grouped}.{cents}"),
            (Lang::En, None) => format!("{sign}{symbol}{grouped}"),
        }
    }
}

/// The legal notices under the form: the cap, and the tax treatment of the gift.
pub fn notices(lang: Lang, spec: &FormSpec, campaign: &str) -> Vec<String> {
    let mut notices = Vec::new();
    let french = spec.nationality_or_residence.as_deref() == Some("FR");
    if let Some((cap, scope)) = spec.cap {
        let cap = lang.money(cap);
        notices.push(match (lang, scope, french) {
            (Lang::Fr, Scope::CalendarYear, _) => format!("Les dons d'une même personne physique à un ou plusieurs partis ne peuvent excéder {cap} par an (art. 11-4 de la loi n° 88-227 du 11 mars 1988)."),
            (Lang::Fr, _, true) => format!("Les dons d'une même personne physique pour le financement de la campagne d'un ou plusieurs candidats lors d'une même élection ne peuvent excéder {cap} (art. L. 52-8 du code électoral)."),
            (Lang::Fr, _, false) => format!("Une même personne peut donner au plus {cap} par élection à {campaign}."),
            (Lang::En, Scope::CalendarYear, _) => format!("A person may give at most {cap} a year to one or more French political parties, in all."),
            (Lang::En, _, true) => format!("A person may give at most {cap} in all to the candidates of one French election (electoral code, art. L. 52-8)."),
            (Lang::En, _, false) => format!("An individual may give up to {cap} per election to {campaign}; primary and general elections count separately."),
        });
    }
    if french {
        let example = Money::from_minor(10_000, spec.currency);
        let cost = example
            .percentage(super::FRENCH_TAX_REDUCTION)
            .and_then(|reduction| example.checked_sub(reduction))
            .unwrap_or(example);
        notices.push(match lang {
            Lang::Fr => format!("Votre don ouvre droit à une réduction d'impôt sur le revenu de 66 % de son montant, dans la limite de 20 % du revenu imposable (art. 200 du code général des impôts) : un don de {} vous revient à {}. Le mandataire financier vous adressera un reçu fiscal numéroté.", lang.money(example), lang.money(cost)),
            Lang::En => format!("Gifts give a French income-tax reduction of 66 % of their amount, up to 20 % of taxable income (tax code, art. 200): a gift of {} costs you {}. The financial agent will send you a numbered tax receipt.", lang.money(example), lang.money(cost)),
        });
    }
    if spec.citizens_of.as_deref() == Some("US") {
        notices.push(match lang {
            Lang::Fr => format!("Les dons à {campaign} ne sont pas déductibles de l'impôt fédéral sur le revenu."),
            Lang::En => format!("Contributions to {campaign} are not deductible as charitable contributions for federal income tax purposes."),
        });
    }
    if spec.employer_and_occupation {
        notices.push(match lang {
            Lang::Fr => "La loi fédérale nous impose de tout faire pour recueillir et déclarer le nom, l'adresse postale, la profession et l'employeur des personnes dont les dons dépassent 200 $ par cycle électoral.".to_owned(),
            Lang::En => "Federal law requires us to use our best efforts to collect and report the name, mailing address, occupation and name of employer of individuals whose contributions exceed $200 in an election cycle.".to_owned(),
        });
    }
    notices
}

/// Why a gift is refused, by the kind of rule that refused it; `None` for a rule whose own
/// reason is the clearest thing to show (the cap's message comes with the room left).
pub fn refusal(lang: Lang, check: Option<&Check>) -> Option<&'static str> {
    Some(match (lang, check?) {
        (Lang::Fr, Check::NaturalPersonsOnly) => "Seules les personnes physiques peuvent donner (art. L. 52-8 du code électoral).",
        (Lang::Fr, Check::NationalityOrResidence { .. }) => "Seules les personnes de nationalité française ou résidant en France peuvent donner (art. L. 52-8 du code électoral).",
        (Lang::Fr, Check::CitizenOrPermanentResident { .. }) => "Seuls les citoyens des États-Unis et les résidents permanents peuvent donner.",
        (Lang::Fr, Check::Attestations { .. }) => "Les attestations sont obligatoires pour donner.",
        (Lang::Fr, Check::Cap { .. }) => "Ce don dépasserait le plafond des dons d'une même personne.",
        (Lang::Fr, Check::FinancingPeriod) => "La campagne ne peut pas recevoir de dons à cette date (hors de sa période de financement).",
        (Lang::En, Check::NaturalPersonsOnly) => "Only individuals may give; corporations and organisations may not.",
        (Lang::En, Check::NationalityOrResidence { .. }) => "Only French nationals and residents of France may give.",
        (Lang::En, Check::CitizenOrPermanentResident { .. }) => "Only U.S. citizens and lawfully admitted permanent residents may give (52 U.S.C. 30121).",
        (Lang::En, Check::Attestations { .. }) => "You must confirm each statement to give.",
        (Lang::En, Check::Cap { .. }) => "This gift would take you past the contribution limit.",
        (Lang::En, Check::FinancingPeriod) => "The campaign cannot take gifts on this date (outside its financing period).",
        _ => return None,
    })
}

/// Everything the donor reads, in one language.
#[derive(Debug)]
pub struct Words {
    pub give_to: &'static str,
    pub amount: &'static str,
    pub other_amount: &'static str,
    pub other_choice: &'static str,
    pub you: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub address_line1: &'static str,
    pub postal_code: &'static str,
    pub city: &'static str,
    pub country: &'static str,
    pub nationality: &'static str,
    pub residence: &'static str,
    pub employer: &'static str,
    pub occupation: &'static str,
    pub attestations: &'static str,
    pub submit: &'static str,
    pub required: &'static str,
    pub errors_intro: &'static str,
    pub choose: &'static str,
    pub secure_payment: &'static str,
    pub other_language: &'static str,
    // Field problems.
    pub missing: &'static str,
    pub bad_amount: &'static str,
    pub below_minimum: &'static str,
    pub above_maximum: &'static str,
    pub bad_email: &'static str,
    pub bad_country: &'static str,
    pub too_long: &'static str,
    pub unticked: &'static str,
    // Outcomes.
    pub refused_title: &'static str,
    pub you_may_still_give: &'static str,
    pub expired_form: &'static str,
    pub too_many_attempts: &'static str,
    pub unavailable: &'static str,
    pub thanks_title: &'static str,
    pub thanks_recorded: &'static str,
    pub thanks_pending: &'static str,
    pub gift: &'static str,
    pub date: &'static str,
    pub reference: &'static str,
    pub receipt_number: &'static str,
    pub cancelled_title: &'static str,
    pub cancelled_body: &'static str,
    pub give_again: &'static str,
    pub not_found: &'static str,
}

const FRENCH: Words = Words {
    give_to: "Faire un don à",
    amount: "Montant du don",
    other_amount: "Autre montant",
    other_choice: "Autre",
    you: "Vos coordonnées",
    name: "Nom et prénom",
    email: "Adresse électronique",
    address_line1: "Adresse",
    postal_code: "Code postal",
    city: "Ville",
    country: "Pays de résidence",
    nationality: "Nationalité",
    residence: "Pays de résidence fiscale",
    employer: "Employeur",
    occupation: "Profession",
    attestations: "Attestations",
    submit: "Continuer vers le paiement",
    required: "obligatoire",
    errors_intro: "Le formulaire contient des erreurs :",
    choose: "Choisir…",
    secure_payment: "Le paiement par carte est traité par notre prestataire de paiement ; aucune donnée de carte ne transite par ce site.",
    other_language: "English",
    missing: "Ce champ est obligatoire.",
    bad_amount: "Indiquez un montant en euros, par exemple 25 ou 25,50.",
    below_minimum: "Le montant minimum d'un don est de",
    above_maximum: "Le montant maximum d'un don est de",
    bad_email: "Indiquez une adresse électronique valide, par exemple nom@exemple.fr.",
    bad_country: "Choisissez un pays dans la liste.",
    too_long: "Ce texte est trop long.",
    unticked: "Cette attestation est obligatoire pour faire un don.",
    refused_title: "Ce don ne peut pas être accepté",
    you_may_still_give: "Vous pouvez encore donner",
    expired_form: "Le formulaire a expiré ou a déjà été envoyé. Vérifiez vos informations et envoyez-le à nouveau.",
    too_many_attempts: "Trop de tentatives en peu de temps. Réessayez dans quelques minutes.",
    unavailable: "Le paiement est momentanément indisponible. Votre don n'a pas été enregistré ; réessayez dans quelques minutes.",
    thanks_title: "Merci pour votre don",
    thanks_recorded: "Votre don est enregistré dans les comptes de la campagne.",
    thanks_pending: "Votre paiement est accepté ; son enregistrement dans les comptes de la campagne est en cours.",
    gift: "Don",
    date: "Date",
    reference: "Référence",
    receipt_number: "Numéro du reçu fiscal que vous adressera le mandataire financier",
    cancelled_title: "Don annulé",
    cancelled_body: "Aucun paiement n'a été effectué.",
    give_again: "Revenir au formulaire de don",
    not_found: "Cette page n'existe pas.",
};

const ENGLISH: Words = Words {
    give_to: "Give to",
    amount: "Amount",
    other_amount: "Other amount",
    other_choice: "Other",
    you: "About you",
    name: "Full name",
    email: "Email",
    address_line1: "Street address",
    postal_code: "Postal code",
    city: "City",
    country: "Country",
    nationality: "Nationality",
    residence: "Country of residence",
    employer: "Employer",
    occupation: "Occupation",
    attestations: "By giving, I confirm that",
    submit: "Continue to payment",
    required: "required",
    errors_intro: "Please correct the following:",
    choose: "Choose…",
    secure_payment: "Card payments are handled by our payment provider; no card data passes through this site.",
    other_language: "Français",
    missing: "This field is required.",
    bad_amount: "Enter an amount such as 25 or 25.50.",
    below_minimum: "The smallest gift we can take is",
    above_maximum: "The largest gift we can take at once is",
    bad_email: "Enter a valid email address, such as name@example.com.",
    bad_country: "Choose a country from the list.",
    too_long: "This text is too long.",
    unticked: "You must confirm this to give.",
    refused_title: "We cannot accept this gift",
    you_may_still_give: "You may still give",
    expired_form: "This form expired or was already sent. Please check your details and send it again.",
    too_many_attempts: "Too many attempts in a short time. Please try again in a few minutes.",
    unavailable: "Payment is unavailable right now. Your gift was not recorded; please try again in a few minutes.",
    thanks_title: "Thank you for your gift",
    thanks_recorded: "Your gift is recorded in the campaign's books.",
    thanks_pending: "Your payment went through; it is being recorded in the campaign's books.",
    gift: "Gift",
    date: "Date",
    reference: "Reference",
    receipt_number: "Number of the tax receipt the financial agent will send you",
    cancelled_title: "Gift cancelled",
    cancelled_body: "No payment was made.",
    give_again: "Back to the donation form",
    not_found: "There is no such page.",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn amounts_are_written_the_way_each_language_writes_them() {
        let eur = |minor| Money::from_minor(minor, Currency::parse("EUR").unwrap());
        let usd = Money::from_minor(350_000, Currency::parse("USD").unwrap());
        assert_eq!(Lang::Fr.money(eur(460_000)), "4\u{202f}600,00\u{a0}€");
        assert_eq!(Lang::Fr.money(eur(10_000)), "100,00\u{a0}€");
        assert_eq!(Lang::En.money(eur(2_550)), "€25.50");
        assert_eq!(Lang::En.money(usd), "$3,500.00");
        assert_eq!(Lang::En.money(eur(123_456_789)), "€1,234,567.89");
    }
}

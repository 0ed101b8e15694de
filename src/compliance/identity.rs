//! Donor identity: who is the same person, whatever card, email or spelling they used.
//!
//! Caps are per person, so identity decides how gifts add up. Two gifts belong to the same
//! donor when they share a normalised email, a card fingerprint, or a normalised name *and*
//! postal address (a name alone is not enough: two Jean Martin are two people).
//!
//! Invariants: normalisation is pure and idempotent (`norm(norm(x)) == norm(x)`); it folds
//! case, accents, spacing, punctuation and hyphens, and for names the order of the words, so
//! "Jean-Pierre DUPONT" and "dupont jean pierre" are one key; linking is transitive (A shares
//! a card with B, B an email with C: A, B and C are one donor), and the grouping does not
//! depend on the order of the records.

use std::collections::BTreeMap;

use unicode_normalization::UnicodeNormalization;

/// Folds `text` to lowercase ASCII-ish words: accents removed, ligatures spelt out, every
/// run of punctuation, hyphens or spaces made one space.
fn fold(text: &str) -> Vec<String> {
    let mut plain = String::with_capacity(text.len());
    for c in text.nfkd() {
        match c {
            'œ' | 'Œ' => plain.push_str("oe"),
            'æ' | 'Æ' => plain.push_str("ae"),
            'ß' => plain.push_str("ss"),
            'ø' | 'Ø' => plain.push('o'),
            'đ' | 'Đ' => plain.push('d'),
            'ł' | 'Ł' => plain.push('l'),
            c if unicode_normalization::char::is_combining_mark(c) => {}
            c if c.is_alphanumeric() => plain.extend(c.to_lowercase()),
            _ => plain.push(' '),
        }
    }
    plain.split_whitespace().map(str::to_owned).collect()
}

/// A person's name as a key: folded, and its words sorted, so the order given (first name
/// first, or family name first as on French forms) does not matter.
pub fn name_key(name: &str) -> String {
    let mut words = fold(name);
    words.sort();
    words.join(" ")
}

/// A postal address as a key: street line, postal code and country, folded, with the usual
/// abbreviations of street types spelt out. The city is left out: the postal code already
/// says it, and its spelling varies more ("St-Denis", "Saint Denis").
pub fn address_key(line1: &str, postal_code: &str, country: &str) -> String {
    let street: Vec<String> = fold(line1)
        .into_iter()
        .map(|word| expand(&word).unwrap_or(word))
        .filter(|word| !word.is_empty())
        .collect();
    let postal: String = postal_code
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    // A US ZIP+4 names the same address as its 5-digit ZIP.
    let postal = match country.trim().to_ascii_uppercase().as_str() {
        "US" if postal.len() == 9 && postal.chars().all(|c| c.is_ascii_digit()) => {
            postal[..5].to_owned()
        }
        _ => postal,
    };
    format!(
        "{}|{postal}|{}",
        street.join(" "),
        country.trim().to_ascii_uppercase()
    )
}

/// Spelt-out forms of common street abbreviations (French and US).
fn expand(word: &str) -> Option<String> {
    let full = match word {
        "av" | "ave" => "avenue",
        "bd" | "bld" | "blvd" | "boul" => "boulevard",
        "pl" => "place",
        "imp" => "impasse",
        "fbg" => "faubourg",
        "chem" => "chemin",
        "rte" => "route",
        "st" => "street",
        "rd" => "road",
        "dr" => "drive",
        "ln" => "lane",
        "apt" => "apartment",
        "ste" => "suite",
        // "N° 5", "no 5": the number sign says nothing.
        "n" | "no" => "",
        _ => return None,
    };
    Some(full.to_owned())
}

/// An email as a key: trimmed and lowercased (providers treat local parts case-blind).
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// What a gift says about its giver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Giver {
    pub name: Option<String>,
    pub email: Option<String>,
    pub card_fingerprint: Option<String>,
    /// (line1, postal code, country)
    pub address: Option<(String, String, String)>,
}

impl Giver {
    /// The keys under which this giver links to others.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(email) = self.email.as_deref().map(email_key) {
            if !email.is_empty() {
                keys.push(format!("email:{email}"));
            }
        }
        if let Some(card) = self.card_fingerprint.as_deref().map(str::trim) {
            if !card.is_empty() {
                keys.push(format!("card:{card}"));
            }
        }
        if let (Some(name), Some((line1, postal, country))) = (&self.name, &self.address) {
            let name = name_key(name);
            if !name.is_empty() && !line1.trim().is_empty() {
                keys.push(format!(
                    "person:{name}|{}",
                    address_key(line1, postal, country)
                ));
            }
        }
        keys
    }
}

/// Groups `givers` into donors: returns, for each giver, the index of the first giver of its
/// group (so equal numbers mean one donor). A giver with no key at all stands alone.
pub fn link(givers: &[Giver]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..givers.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_with_key: BTreeMap<String, usize> = BTreeMap::new();
    for (i, giver) in givers.iter().enumerate() {
        for key in giver.keys() {
            let other = *first_with_key.entry(key).or_insert(i);
            let (a, b) = (root(&mut parent, i), root(&mut parent, other));
            // The smaller index becomes the root, so the answer is independent of the order
            // in which links are found.
            parent[a.max(b)] = a.min(b);
        }
    }
    (0..givers.len()).map(|i| root(&mut parent, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_accents_spacing_hyphens_and_order() {
        let same = [
            "Jean-Pierre DUPONT",
            "dupont jean pierre",
            "  Dupont,  Jean Pierre ",
            "DUPONT Jean-Pierre",
        ];
        for name in same {
            assert_eq!(name_key(name), "dupont jean pierre", "{name}");
        }
        assert_eq!(name_key("Hélène Lefèvre"), name_key("HELENE LEFEVRE"));
        assert_eq!(name_key("Æsa Œuvrard"), "aesa oeuvrard");
        assert_eq!(name_key("O'Brien, Seán"), "brien o sean");
        assert_ne!(name_key("Jean Martin"), name_key("Jeanne Martin"));
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for name in ["Jean-Pierre DUPONT", "Hélène  Lefèvre", "Straße"] {
            assert_eq!(name_key(&name_key(name)), name_key(name));
        }
    }

    #[test]
    fn addresses_fold_abbreviations_and_postal_code_spacing() {
        assert_eq!(
            address_key("12, Bd Voltaire", "75011", "fr"),
            address_key("12 boulevard VOLTAIRE", "75 011", "FR")
        );
        assert_eq!(
            address_key("1600 Pennsylvania Ave NW", "20500-0003", "US"),
            address_key("1600 pennsylvania avenue nw", "20500", "US")
        );
        assert_eq!(
            address_key("N° 5 rue de la Paix", "75002", "FR"),
            address_key("5 rue de la paix", "75002", "FR")
        );
        assert_ne!(
            address_key("12 rue Voltaire", "75011", "FR"),
            address_key("14 rue Voltaire", "75011", "FR")
        );
    }

    fn giver(name: &str, email: &str, card: &str, line1: &str) -> Giver {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Giver {
            name: text(name),
            email: text(email),
            card_fingerprint: text(card),
            address: text(line1).map(|l| (l, "75011".to_owned(), "FR".to_owned())),
        }
    }

    #[test]
    fn two_cards_and_two_emails_are_one_donor_through_any_shared_key() {
        let givers = [
            giver("Jean Dupont", "jean@example.fr", "fp_A", ""),
            giver("Jean Dupont", "JEAN@example.fr ", "fp_B", ""), // same email, other card
            giver("J. Dupont", "jd@work.example", "fp_B", ""),    // same card, other email
            giver("Jean Dupont", "other@example.fr", "fp_C", ""), // same name, no address: no link
        ];
        assert_eq!(link(&givers), vec![0, 0, 0, 3]);
    }

    #[test]
    fn a_name_written_differently_at_the_same_address_is_one_donor() {
        let givers = [
            giver("Jean-Pierre DUPONT", "a@example.fr", "", "12 bd Voltaire"),
            giver(
                "dupont jean pierre",
                "b@example.fr",
                "",
                "12, boulevard Voltaire",
            ),
            giver(
                "Jean-Pierre Dupont",
                "c@example.fr",
                "",
                "14 boulevard Voltaire",
            ),
        ];
        assert_eq!(link(&givers), vec![0, 0, 2]);
    }

    #[test]
    fn linking_is_transitive_and_independent_of_order() {
        let a = giver("", "a@example.fr", "fp_1", "");
        let b = giver("", "b@example.fr", "fp_1", "");
        let c = giver("", "b@example.fr", "fp_2", "");
        let d = giver("", "d@example.fr", "fp_3", "");
        let forward = link(&[a.clone(), b.clone(), c.clone(), d.clone()]);
        assert_eq!(forward, vec![0, 0, 0, 3]);
        let backward = link(&[d, c, b, a]);
        assert_eq!(backward, vec![0, 1, 1, 1]);
        assert_eq!(link(&[Giver::default(), Giver::default()]), vec![0, 1]);
    }

    proptest::proptest! {
        #[test]
        fn name_keys_are_idempotent(name in "\\PC{0,40}") {
            let once = name_key(&name);
            proptest::prop_assert_eq!(name_key(&once), once);
        }

        #[test]
        fn the_grouping_does_not_depend_on_order(
            keys in proptest::collection::vec((0u8..6, 0u8..6), 1..12),
            rotation in 0usize..12,
        ) {
            let givers: Vec<Giver> = keys
                .iter()
                .map(|(email, card)| Giver {
                    email: Some(format!("d{email}@example.fr")),
                    card_fingerprint: Some(format!("fp_{card}")),
                    ..Giver::default()
                })
                .collect();
            let n = givers.len();
            let mut rotated = givers.clone();
            rotated.rotate_left(rotation % n);
            let (a, b) = (link(&givers), link(&rotated));
            for i in 0..n {
                for j in 0..n {
                    let (ri, rj) = ((i + n - rotation % n) % n, (j + n - rotation % n) % n);
                    proptest::prop_assert_eq!(a[i] == a[j], b[ri] == b[rj]);
                }
            }
        }
    }
}

//! Who owns a simulated Item's accounts, and where they live: derived from the item id, so the
//! same Item always has the same people.

use super::dice::Dice;
use super::ids;
use linkstate_wire::plaid::{AccountBase, Address, AddressData, Email, Owner, PhoneNumber};

/// A city people live and shop in.
#[derive(Debug)]
pub struct City {
    /// Its name.
    pub name: &'static str,
    /// Its state.
    pub region: &'static str,
    /// A postal code in it.
    pub postal_code: &'static str,
    /// Its telephone area code.
    pub area_code: &'static str,
}

const CITIES: &[City] = &[
    city("San Francisco", "CA", "94103", "415"),
    city("New York", "NY", "10001", "212"),
    city("Austin", "TX", "78701", "512"),
    city("Chicago", "IL", "60601", "312"),
    city("Seattle", "WA", "98101", "206"),
    city("Denver", "CO", "80202", "303"),
];

const FIRST_NAMES: &[&str] = &[
    "Alberta", "Bruno", "Camila", "Dmitri", "Esther", "Farid", "Grace", "Hiro", "Imani", "Jonas",
];
const LAST_NAMES: &[&str] = &[
    "Charleson",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Alvarez",
    "Novak",
    "Haddad",
];
const STREETS: &[&str] = &[
    "Cameron Road",
    "Mission Street",
    "Oak Avenue",
    "Lakeview Drive",
    "Maple Court",
];

const fn city(
    name: &'static str,
    region: &'static str,
    postal_code: &'static str,
    area_code: &'static str,
) -> City {
    City {
        name,
        region,
        postal_code,
        area_code,
    }
}

/// Where the holders of the Item `item_id` live.
pub fn home_city(item_id: &str) -> &'static City {
    let mut dice = Dice::new(ids::derived_u64(&format!("{item_id}:home")));
    &CITIES[dice.below(CITIES.len() as u64) as usize]
}

/// The owners of each account of the Item: one holder everywhere, joined by a second on savings.
pub fn owners(item_id: &str, accounts: &[AccountBase]) -> Vec<Vec<Owner>> {
    let mut dice = Dice::new(ids::derived_u64(&format!("{item_id}:owners")));
    let city = home_city(item_id);
    let street = format!(
        "{} {}",
        dice.between(100, 9999),
        STREETS[dice.below(STREETS.len() as u64) as usize]
    );
    let holder = person(&mut dice, city, &street, 0);
    let partner = person(&mut dice, city, &street, 1);
    accounts
        .iter()
        .map(|account| match account.subtype.as_deref() {
            Some("savings") => vec![holder.clone(), partner.clone()],
            _ => vec![holder.clone()],
        })
        .collect()
}

/// One person at `street`, `city`; `n` keeps the sandbox emails apart.
fn person(dice: &mut Dice, city: &City, street: &str, n: u32) -> Owner {
    let first = FIRST_NAMES[dice.below(FIRST_NAMES.len() as u64) as usize];
    let last = LAST_NAMES[dice.below(LAST_NAMES.len() as u64) as usize];
    let phone = |dice: &mut Dice| format!("+1 {}-555-{:04}", city.area_code, dice.below(10_000));
    Owner {
        names: vec![format!("{first} {last}")],
        phone_numbers: vec![
            PhoneNumber {
                data: phone(dice),
                primary: true,
                r#type: Some("mobile".to_owned()),
            },
            PhoneNumber {
                data: phone(dice),
                primary: false,
                r#type: Some("home".to_owned()),
            },
        ],
        emails: vec![Email {
            data: format!("accountholder{n}@example.com"),
            primary: true,
            r#type: Some("primary".to_owned()),
        }],
        addresses: vec![Address {
            data: AddressData {
                street: street.to_owned(),
                city: Some(city.name.to_owned()),
                region: Some(city.region.to_owned()),
                postal_code: Some(city.postal_code.to_owned()),
                country: Some("US".to_owned()),
            },
            primary: Some(true),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts;

    #[test]
    fn same_item_same_people() {
        let accounts = accounts::generate("item-a");
        assert_eq!(owners("item-a", &accounts), owners("item-a", &accounts));
        let owners = owners("item-a", &accounts);
        assert_eq!(owners.len(), accounts.len());
        assert_eq!(owners[1].len(), 2, "savings is joint");
        assert_eq!(owners[0][0], owners[1][0], "the same holder");
        assert_eq!(
            owners[0][0].addresses[0].data.country.as_deref(),
            Some("US")
        );
    }
}

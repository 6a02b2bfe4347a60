//! The institutions the simulator knows: Plaid's sandbox ones, all in the US.

use linkstate_wire::plaid::Institution;

/// One institution of the catalog.
#[derive(Debug)]
pub struct InstitutionSeed {
    /// Plaid's institution id.
    pub id: &'static str,
    /// Its name.
    pub name: &'static str,
    /// The products it supports.
    pub products: &'static [&'static str],
    /// Its routing numbers.
    pub routing_numbers: &'static [&'static str],
    /// Whether it logs in with OAuth.
    pub oauth: bool,
}

const FULL: &[&str] = &[
    "assets",
    "auth",
    "balance",
    "identity",
    "investments",
    "liabilities",
    "transactions",
];
const BASIC: &[&str] = &["auth", "balance", "identity", "transactions"];

/// Plaid's sandbox institutions (names as in Plaid's sandbox and API examples).
const CATALOG: &[InstitutionSeed] = &[
    seed(
        "ins_109508",
        "First Platypus Bank",
        FULL,
        &["011401533"],
        false,
    ),
    seed(
        "ins_109509",
        "First Gingham Credit Union",
        FULL,
        &["011201762"],
        false,
    ),
    seed(
        "ins_109510",
        "Tattersall Federal Credit Union",
        FULL,
        &["011301798"],
        false,
    ),
    seed("ins_109511", "Tartan Bank", FULL, &["011601074"], false),
    seed(
        "ins_109512",
        "Houndstooth Bank",
        BASIC,
        &["011000138", "011200365", "011400495"],
        false,
    ),
    seed(
        "ins_127287",
        "Platypus OAuth Bank",
        FULL,
        &["021000089"],
        true,
    ),
    seed("ins_3", "Chase", FULL, &["021000021", "322271627"], true),
    seed("ins_56", "Chase", FULL, &["021000021"], true),
];

const fn seed(
    id: &'static str,
    name: &'static str,
    products: &'static [&'static str],
    routing_numbers: &'static [&'static str],
    oauth: bool,
) -> InstitutionSeed {
    InstitutionSeed {
        id,
        name,
        products,
        routing_numbers,
        oauth,
    }
}

/// The institution with this id, if the simulator knows it.
pub fn find(id: &str) -> Option<&'static InstitutionSeed> {
    CATALOG.iter().find(|seed| seed.id == id)
}

/// Every institution, in catalog order.
pub fn all() -> &'static [InstitutionSeed] {
    CATALOG
}

impl InstitutionSeed {
    /// Whether it serves this country (all of the catalog is in the US).
    pub fn serves(&self, country_code: &str) -> bool {
        country_code == "US"
    }

    /// The `Institution` of `/institutions/get_by_id`.
    pub fn to_institution(&self) -> Institution {
        Institution {
            institution_id: self.id.to_owned(),
            name: self.name.to_owned(),
            products: strings(self.products),
            country_codes: vec!["US".to_owned()],
            url: None,
            primary_color: None,
            logo: None,
            routing_numbers: strings(self.routing_numbers),
            oauth: self.oauth,
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

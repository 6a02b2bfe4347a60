//! Where simulated money goes and comes from: merchants and transfers, with the accounts they
//! show up in, how often, and their usual amounts.

/// The kinds of account that have transactions (a CD has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A checking account: spending, pay, bills and transfers.
    Checking,
    /// A credit card: spending and card payments.
    Card,
    /// Savings and money market: interest and transfers.
    Savings,
}

impl Kind {
    /// The kind of an account subtype, `None` for accounts without transactions.
    pub fn of(subtype: Option<&str>) -> Option<Self> {
        match subtype? {
            "checking" => Some(Self::Checking),
            "credit card" => Some(Self::Card),
            "savings" | "money market" => Some(Self::Savings),
            _ => None,
        }
    }

    /// How many of an Item's transactions fall on an account of this kind, relatively.
    pub fn weight(self) -> u32 {
        match self {
            Self::Checking => 9,
            Self::Card => 8,
            Self::Savings => 1,
        }
    }
}

/// Spending shows up on both checking and card accounts.
const SPENDING: &[Kind] = &[Kind::Checking, Kind::Card];

/// One counterparty of the catalog.
#[derive(Debug)]
pub struct Merchant {
    /// The description the bank shows (`name` in Plaid).
    pub description: &'static str,
    /// The clean merchant name, `None` for transfers and pay.
    pub merchant_name: Option<&'static str>,
    /// The merchant's website.
    pub website: Option<&'static str>,
    /// Plaid's personal finance category: `(primary, detailed)`.
    pub category: (&'static str, &'static str),
    /// `online`, `in store` or `other`.
    pub channel: &'static str,
    /// The usual amount range in cents, positive when money leaves the account.
    pub cents: (i64, i64),
    /// The accounts it shows up in.
    pub kinds: &'static [Kind],
    /// How often, relative to the others of the same account.
    pub weight: u32,
}

/// The catalog.
#[rustfmt::skip] // a table: one merchant a line
pub const MERCHANTS: &[Merchant] = &[
    spend("STARBUCKS STORE 05498", "Starbucks", "starbucks.com", FOOD, "FOOD_AND_DRINK_COFFEE", IN_STORE, (325, 1450), 8),
    spend("MCDONALD'S F2451", "McDonald's", "mcdonalds.com", FOOD, "FOOD_AND_DRINK_FAST_FOOD", IN_STORE, (450, 2200), 5),
    spend("CHIPOTLE 1187", "Chipotle", "chipotle.com", FOOD, "FOOD_AND_DRINK_FAST_FOOD", IN_STORE, (925, 2800), 4),
    spend("SQ *BLUE BOTTLE COFFEE", "Blue Bottle Coffee", "bluebottlecoffee.com", FOOD, "FOOD_AND_DRINK_COFFEE", IN_STORE, (450, 1600), 3),
    spend("TST* NOPA RESTAURANT", "Nopa", "nopasf.com", FOOD, "FOOD_AND_DRINK_RESTAURANT", IN_STORE, (3800, 16500), 2),
    spend("WHOLEFDS MKT 10234", "Whole Foods Market", "wholefoodsmarket.com", FOOD, "FOOD_AND_DRINK_GROCERIES", IN_STORE, (1800, 21000), 6),
    spend("TRADER JOE S #552", "Trader Joe's", "traderjoes.com", FOOD, "FOOD_AND_DRINK_GROCERIES", IN_STORE, (1500, 16000), 5),
    spend("UBER *TRIP HELP.UBER.COM", "Uber", "uber.com", TRANSPORT, "TRANSPORTATION_TAXIS_AND_RIDE_SHARES", ONLINE, (700, 6500), 5),
    spend("LYFT *RIDE SUN 4PM", "Lyft", "lyft.com", TRANSPORT, "TRANSPORTATION_TAXIS_AND_RIDE_SHARES", ONLINE, (800, 5200), 2),
    spend("SHELL OIL 57444", "Shell", "shell.com", TRANSPORT, "TRANSPORTATION_GAS", IN_STORE, (2500, 8500), 4),
    spend("AMZN Mktp US*2K4RX1290", "Amazon", "amazon.com", MERCHANDISE, "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES", ONLINE, (799, 32000), 7),
    spend("TARGET 00012344", "Target", "target.com", MERCHANDISE, "GENERAL_MERCHANDISE_SUPERSTORES", IN_STORE, (1200, 24000), 4),
    spend("WM SUPERCENTER #1700", "Walmart", "walmart.com", MERCHANDISE, "GENERAL_MERCHANDISE_SUPERSTORES", IN_STORE, (900, 18000), 3),
    spend("THE HOME DEPOT #0611", "The Home Depot", "homedepot.com", "HOME_IMPROVEMENT", "HOME_IMPROVEMENT_HARDWARE", IN_STORE, (1000, 40000), 2),
    spend("WALGREENS #4412", "Walgreens", "walgreens.com", "MEDICAL", "MEDICAL_PHARMACIES_AND_SUPPLEMENTS", IN_STORE, (400, 6500), 3),
    spend("NETFLIX.COM", "Netflix", "netflix.com", ENTERTAINMENT, "ENTERTAINMENT_TV_AND_MOVIES", ONLINE, (1549, 2299), 1),
    spend("SPOTIFY USA", "Spotify", "spotify.com", ENTERTAINMENT, "ENTERTAINMENT_MUSIC_AND_AUDIO", ONLINE, (1099, 1699), 1),
    spend("APPLE.COM/BILL", "Apple", "apple.com", MERCHANDISE, "GENERAL_MERCHANDISE_ELECTRONICS", ONLINE, (99, 1499), 2),
    spend("DELTA AIR LINES 0062345", "Delta Air Lines", "delta.com", TRAVEL, "TRAVEL_FLIGHTS", ONLINE, (12000, 78000), 1),
    spend("AIRBNB * HMQ2ZP4K", "Airbnb", "airbnb.com", TRAVEL, "TRAVEL_LODGING", ONLINE, (14000, 120000), 1),
    Merchant {
        description: "ACME CORP PAYROLL PPD ID: 9111111111",
        merchant_name: None,
        website: None,
        category: ("INCOME", "INCOME_WAGES"),
        channel: OTHER,
        cents: (-450_000, -180_000),
        kinds: &[Kind::Checking],
        weight: 3,
    },
    Merchant {
        description: "COMCAST CABLE COMM 800-266-2278",
        merchant_name: Some("Comcast"),
        website: Some("xfinity.com"),
        category: (UTILITIES, "RENT_AND_UTILITIES_INTERNET_AND_CABLE"),
        channel: ONLINE,
        cents: (6000, 13000),
        kinds: &[Kind::Checking],
        weight: 1,
    },
    Merchant {
        description: "PGANDE WEB ONLINE",
        merchant_name: Some("PG&E"),
        website: Some("pge.com"),
        category: (UTILITIES, "RENT_AND_UTILITIES_GAS_AND_ELECTRICITY"),
        channel: ONLINE,
        cents: (4500, 21000),
        kinds: &[Kind::Checking],
        weight: 1,
    },
    Merchant {
        description: "CREDIT CARD 3333 PAYMENT *//",
        merchant_name: None,
        website: None,
        category: ("LOAN_PAYMENTS", "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT"),
        channel: OTHER,
        cents: (20_000, 250_000),
        kinds: &[Kind::Checking],
        weight: 2,
    },
    Merchant {
        description: "ATM WITHDRAWAL 1234 MAIN ST",
        merchant_name: None,
        website: None,
        category: ("TRANSFER_OUT", "TRANSFER_OUT_WITHDRAWAL"),
        channel: IN_STORE,
        cents: (2000, 20000),
        kinds: &[Kind::Checking],
        weight: 1,
    },
    Merchant {
        description: "VENMO PAYMENT 1029384756",
        merchant_name: Some("Venmo"),
        website: Some("venmo.com"),
        category: ("TRANSFER_OUT", "TRANSFER_OUT_ACCOUNT_TRANSFER"),
        channel: OTHER,
        cents: (1000, 15000),
        kinds: &[Kind::Checking],
        weight: 2,
    },
    Merchant {
        description: "ONLINE TRANSFER TO SAVINGS XXXXXX1111",
        merchant_name: None,
        website: None,
        category: ("TRANSFER_OUT", "TRANSFER_OUT_SAVINGS"),
        channel: OTHER,
        cents: (5000, 100_000),
        kinds: &[Kind::Checking],
        weight: 1,
    },
    Merchant {
        description: "AUTOMATIC PAYMENT - THANK YOU",
        merchant_name: None,
        website: None,
        category: ("LOAN_PAYMENTS", "LOAN_PAYMENTS_CREDIT_CARD_PAYMENT"),
        channel: OTHER,
        cents: (-250_000, -20_000),
        kinds: &[Kind::Card],
        weight: 2,
    },
    Merchant {
        description: "INTEREST PAYMENT",
        merchant_name: None,
        website: None,
        category: ("INCOME", "INCOME_INTEREST_EARNED"),
        channel: OTHER,
        cents: (-2500, -5),
        kinds: &[Kind::Savings],
        weight: 3,
    },
    Merchant {
        description: "ONLINE TRANSFER FROM CHECKING XXXXXX0000",
        merchant_name: None,
        website: None,
        category: ("TRANSFER_IN", "TRANSFER_IN_ACCOUNT_TRANSFER"),
        channel: OTHER,
        cents: (-100_000, -5000),
        kinds: &[Kind::Savings],
        weight: 2,
    },
];

const FOOD: &str = "FOOD_AND_DRINK";
const TRANSPORT: &str = "TRANSPORTATION";
const MERCHANDISE: &str = "GENERAL_MERCHANDISE";
const ENTERTAINMENT: &str = "ENTERTAINMENT";
const TRAVEL: &str = "TRAVEL";
const UTILITIES: &str = "RENT_AND_UTILITIES";
const IN_STORE: &str = "in store";
const ONLINE: &str = "online";
const OTHER: &str = "other";

/// A merchant where people spend, on checking and card accounts alike.
#[allow(clippy::too_many_arguments)] // a table row: positional reads best here
const fn spend(
    description: &'static str,
    merchant_name: &'static str,
    website: &'static str,
    primary: &'static str,
    detailed: &'static str,
    channel: &'static str,
    cents: (i64, i64),
    weight: u32,
) -> Merchant {
    Merchant {
        description,
        merchant_name: Some(merchant_name),
        website: Some(website),
        category: (primary, detailed),
        channel,
        cents,
        kinds: SPENDING,
        weight,
    }
}

/// The merchants that show up on accounts of `kind`.
pub fn for_kind(kind: Kind) -> Vec<&'static Merchant> {
    MERCHANTS
        .iter()
        .filter(|merchant| merchant.kinds.contains(&kind))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_merchants_and_sane_ranges() {
        for kind in [Kind::Checking, Kind::Card, Kind::Savings] {
            assert!(!for_kind(kind).is_empty(), "{kind:?}");
        }
        for merchant in MERCHANTS {
            let (low, high) = merchant.cents;
            assert!(
                low < high && (low > 0 || high < 0),
                "{}",
                merchant.description
            );
        }
        assert_eq!(Kind::of(Some("cd")), None);
        assert_eq!(Kind::of(Some("money market")), Some(Kind::Savings));
    }
}

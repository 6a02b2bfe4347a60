//! Typed identifiers, so an account id can never be passed where a connection id belongs.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A tenant: one company using linkstate.
    AccountId
);
id_type!(
    /// A customer of a tenant, the person whose bank accounts are linked.
    CustomerId
);
id_type!(
    /// A connection to one institution through one provider.
    ConnectionId
);
id_type!(
    /// One account at an institution, under a connection.
    FinancialAccountId
);
id_type!(
    /// One event of the log.
    EventId
);
id_type!(
    /// An institution, as linkstate names it.
    InstitutionId
);
id_type!(
    /// A customer's endpoint for outbound webhooks.
    ProfileId
);
id_type!(
    /// One event's delivery to one webhook profile.
    DeliveryId
);

/// The id of one API request, carried into the events it causes (`requestId`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub String);

impl RequestId {
    /// A new request id, 32 hex digits like Meld's.
    pub fn generate() -> Self {
        Self(Uuid::new_v4().simple().to_string())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

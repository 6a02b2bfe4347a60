//! The one shape of every enum whose values go by Meld's names.

/// Declares a fieldless enum whose values are written as Meld writes them
/// (`SCREAMING_SNAKE_CASE`) everywhere: JSON (serde), the database and logs (strum), with
/// `EnumIter` so tests can walk every value, and `as_str`. Extra derives go in the attributes.
macro_rules! meld_name_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            strum::Display,
            strum::EnumString,
            strum::IntoStaticStr,
            strum::EnumIter,
        )]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        #[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
        $vis enum $name { $($body)* }

        impl $name {
            /// The name as stored and printed.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

//! Newtypes for the ids that cross module boundaries. Each is `#[serde(transparent)]`: stored
//! records and JSON keep the bare string they had before.

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }
    };
}

string_id!(
    /// A Bitrix24 portal, by its member id (`PortalRecord.member_id`, `channels.*.portal`).
    MemberId
);
string_id!(
    /// A configured channel (`channels.<id>` in the settings, `{channel}` in the routes).
    ChannelId
);
string_id!(
    /// A `message.deleted` event's id (`del_` + 128 random bits in hex), the key of its report.
    DeletionId
);

string_id!(
    /// An external chat (`chat.id` of contract §2; for Telegram, see `telegram::ids`).
    ChatId
);
string_id!(
    /// An external user, the customer (`user.id` of contract §2).
    UserId
);
string_id!(
    /// An external message (`message.id` of contract §2), unique within its chat.
    MessageId
);

impl DeletionId {
    /// A fresh id: `del_` + 128 random bits in hex.
    pub fn generate() -> Self {
        let bits: u128 = rand::random();
        Self(format!("del_{bits:032x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_the_bare_string() {
        let id = DeletionId::from("del_1");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""del_1""#);
        let back: MemberId = serde_json::from_str(r#""abc""#).unwrap();
        assert_eq!(back, "abc");
        assert_eq!(format!("{back} {back:?}"), r#"abc "abc""#);
    }

    #[test]
    fn generated_deletion_ids_are_distinct_and_shaped() {
        let (a, b) = (DeletionId::generate(), DeletionId::generate());
        assert_ne!(a, b);
        assert!(a.starts_with("del_") && a.len() == 4 + 32, "{a}");
    }
}

//! JSON encoding of records, with decode failures reported as `StoreError::Corrupt`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::IVec;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{StoreError, TxResult};

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data (strings, numbers, enums): serialisation cannot fail.
    serde_json::to_vec(value).expect("records serialise to JSON")
}

pub(crate) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

/// The reads and writes the record helpers make: inside a transaction (`TransactionalTree`), or
/// straight on a tree, in order ([`super::Data::in_order`]).
pub(crate) trait Kv {
    fn read(&self, key: &[u8]) -> TxResult<Option<IVec>>;
    fn write(&self, key: &[u8], value: Vec<u8>) -> TxResult<()>;
    fn delete(&self, key: &[u8]) -> TxResult<()>;
    /// A fresh id ([`sled::Db::generate_id`]; inside a transaction, the transaction's own: the
    /// database's would wait for the transaction's locks).
    fn next_id(&self, db: &sled::Db) -> TxResult<u64>;
}

impl Kv for TransactionalTree {
    fn read(&self, key: &[u8]) -> TxResult<Option<IVec>> {
        Ok(self.get(key)?)
    }
    fn write(&self, key: &[u8], value: Vec<u8>) -> TxResult<()> {
        self.insert(key, value)?;
        Ok(())
    }
    fn delete(&self, key: &[u8]) -> TxResult<()> {
        self.remove(key)?;
        Ok(())
    }
    fn next_id(&self, _db: &sled::Db) -> TxResult<u64> {
        Ok(self.generate_id()?)
    }
}

impl Kv for sled::Tree {
    fn read(&self, key: &[u8]) -> TxResult<Option<IVec>> {
        self.get(key).map_err(ConflictableTransactionError::Storage)
    }
    fn write(&self, key: &[u8], value: Vec<u8>) -> TxResult<()> {
        self.insert(key, value)
            .map(drop)
            .map_err(ConflictableTransactionError::Storage)
    }
    fn delete(&self, key: &[u8]) -> TxResult<()> {
        self.remove(key)
            .map(drop)
            .map_err(ConflictableTransactionError::Storage)
    }
    fn next_id(&self, db: &sled::Db) -> TxResult<u64> {
        db.generate_id()
            .map_err(ConflictableTransactionError::Storage)
    }
}

/// Read and decode a record inside a transaction (or in order).
pub(crate) fn tx_get<T: DeserializeOwned>(
    tree: &impl Kv,
    name: &'static str,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tree.read(key)? {
        None => Ok(None),
        Some(bytes) => decode(name, &bytes)
            .map(Some)
            .map_err(ConflictableTransactionError::Abort),
    }
}

/// Encode and write a record inside a transaction (or in order).
pub(crate) fn tx_put<T: Serialize>(tree: &impl Kv, key: &[u8], value: &T) -> TxResult<()> {
    tree.write(key, encode(value))
}

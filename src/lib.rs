//! placeholder

pub mod signature;

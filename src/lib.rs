//! placeholder

pub mod signature;
pub mod sim;

//! Bitrix24 REST boundary.

pub mod form;

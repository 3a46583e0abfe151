//! Placeholder until the deletion benchmark lands.
fn main() {}

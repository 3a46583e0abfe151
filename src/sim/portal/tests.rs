//! Integration tests of the fake portal over real HTTP.

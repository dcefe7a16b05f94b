//! The doubles: Cognito fakes and Kratos doubles (see `testkit/src/doubles/mod.rs`).
//!
//! They live in the `testkit` crate, which the benchmarks share (`testkit/src/lib.rs` says
//! why), with their own tests; this module re-exports them, so the tests reach them as
//! `crate::doubles::…`, here where the house style puts them.

pub use testkit::doubles::*;

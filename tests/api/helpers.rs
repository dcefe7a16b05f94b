//! The API tests' helpers. `spawn_app` (the real HTTP app on port 0 with a fresh database) and
//! its typed helpers live in `testkit::app`, which the benchmarks share, and are re-exported
//! here.

pub use testkit::app::*;

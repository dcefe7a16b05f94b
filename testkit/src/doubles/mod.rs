//! Stand-ins for what a real server cannot be made to do on demand: Cognito errors moto never
//! raises (auth and directory fakes), and Kratos's faults and current line (v25.4+), which
//! cannot be built here (the admin double, and the Kratos side that calls our hook). The real
//! Kratos v1.3.1 checks the Kratos doubles in `tests/api/doubles_vs_real.rs`.

pub mod cognito_auth_fake;
pub mod cognito_directory_fake;
pub mod kratos_admin;
pub mod kratos_hook_caller;

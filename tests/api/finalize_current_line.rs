//! `finalize` on the current Kratos line (v25.4.0+, the admin double, which cannot be built
//! here as a real server): the flag removal's PUT echoes every field, `external_id` included
//! (a PUT without it clears it on this line), the rows move to `needs_recovery` and are marked
//! finalized, and a rerun writes nothing. The v1.3.x line runs against the real Kratos in
//! `finalize.rs`; the double's PUT is compared with the real one in `doubles_vs_real.rs`.

use cognito_bridge::domain::UserState;
use cognito_bridge::finalize::{self, FinalizeOptions};
use cognito_bridge::import::ImportOptions;
use serde_json::Value;

use crate::doubles::kratos_admin::{AdminDoubleOptions, KratosAdminDouble};
use crate::doubles_vs_real::example_identity_schema;
use crate::finalize::{TRAITS, assert_only_the_flag_went, flagged};
use crate::helpers::import::{import_settings, open_store, run_import};
use crate::helpers::{Backend, TestDatabase};
use crate::moto::{self, Pool};

const PASSWORD: &str = "Current-Line-Pw-1";
const USERS: [&str; 3] = ["ada", "bea", "cy"];

async fn identity(double: &KratosAdminDouble, id: &str) -> Value {
    let response = reqwest::get(format!(
        "{}/admin/identities/{id}?include_credential=password",
        double.url
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200, "GET identity {id}");
    response.json().await.unwrap()
}

on_both_backends!(finalize_on_the_current_line_removes_the_flag_and_keeps_every_other_field);

async fn finalize_on_the_current_line_removes_the_flag_and_keeps_every_other_field(
    backend: Backend,
) {
    let pool = Pool::create(false).await;
    for name in USERS {
        pool.add_user(name, &format!("{name}@example.com"), PASSWORD)
            .await;
    }
    let double = KratosAdminDouble::start(AdminDoubleOptions {
        identity_schema: Some(example_identity_schema()),
        ..AdminDoubleOptions::default()
    })
    .await;
    let database = TestDatabase::new(backend).await;
    let moto = moto::endpoint().await;
    let settings = import_settings(&database.url, &moto, &pool.id, &double.url, TRAITS);
    let imported = run_import(&settings, ImportOptions::default())
        .await
        .expect("the import into the double");
    assert_eq!(imported.counters.created, 3, "{imported:?}");
    let store = open_store(&database).await;

    let mut before = Vec::new();
    for name in USERS {
        let row = store.user(name).await.unwrap().unwrap();
        assert_eq!(row.state, UserState::Pending);
        let identity = identity(&double, row.kratos_identity_id.as_deref().unwrap()).await;
        assert!(flagged(&identity), "{identity:#}");
        assert_eq!(
            identity["external_id"].as_str(),
            row.external_id.as_deref(),
            "the current line keeps the sub in external_id"
        );
        before.push(identity);
    }
    assert_eq!(double.put_calls(), 0);

    let summary = finalize::run(&settings, FinalizeOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.kratos_line, "v25.4.0+", "{summary:?}");
    assert_eq!(summary.kratos_version.as_deref(), Some("v26.2.0"));
    let c = &summary.counts;
    assert_eq!(
        (c.rows, c.finalized, c.flag_removed, c.failed),
        (3, 3, 3, 0),
        "{summary:?}"
    );
    assert_eq!(double.put_calls(), 3);
    for (name, identity) in USERS.iter().zip(&before) {
        let now = self::identity(&double, identity["id"].as_str().unwrap()).await;
        // external_id, traits, both metadata, state, schema and addresses: all as they were.
        assert_only_the_flag_went(name, identity, &now);
        assert!(now["external_id"].is_string(), "{name}: {now:#}");
        let row = store.user(name).await.unwrap().unwrap();
        assert_eq!(row.state, UserState::NeedsRecovery, "{name}");
        assert!(row.finalized_at.is_some(), "{name}");
    }

    // A rerun finds nothing left to do and writes nothing.
    let rerun = finalize::run(&settings, FinalizeOptions::default())
        .await
        .unwrap();
    assert_eq!(rerun.counts.rows, 0, "{rerun:?}");
    assert_eq!(rerun.counts.finalized, 0, "{rerun:?}");
    assert_eq!(double.put_calls(), 3, "no PUT on the rerun");
}

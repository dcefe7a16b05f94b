//! Running `import` in the test process: its settings against a Cognito (moto or the directory
//! fake) and a Kratos (the admin double or the real one), the run itself, and the store it
//! wrote.

use std::sync::Arc;

use cognito_bridge::config::Settings;
use cognito_bridge::import::{self, ImportError, ImportOptions, ImportSummary};
use cognito_bridge::store::{self, Store};

use crate::doubles::cognito_directory_fake::{CognitoDirectoryFake, DirectoryOptions};
use crate::doubles::kratos_admin::{AdminDoubleOptions, KratosAdminDouble};
use crate::helpers::{Backend, TestDatabase};
use crate::moto;

/// Settings for an import from `cognito_endpoint`'s pool into `kratos_url`; `extra` is a
/// TOML file's text (an `[import]` section with `list_rate = 30` when it has none).
pub fn import_settings(
    database_url: &str,
    cognito_endpoint: &str,
    pool_id: &str,
    kratos_url: &str,
    extra: &str,
) -> Settings {
    import_settings_with_public_url(
        database_url,
        cognito_endpoint,
        pool_id,
        kratos_url,
        kratos_url,
        extra,
    )
}

/// [`import_settings`] for a Kratos whose public API has a port of its own (the real one).
pub fn import_settings_with_public_url(
    database_url: &str,
    cognito_endpoint: &str,
    pool_id: &str,
    kratos_admin_url: &str,
    kratos_public_url: &str,
    extra: &str,
) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cognito-bridge.toml");
    let extra = if extra.contains("[import]") {
        extra.to_owned()
    } else {
        format!("{extra}\n[import]\nlist_rate = 30\n")
    };
    std::fs::write(&path, extra).unwrap();
    let environment = [
        ("DATABASE__URL", database_url),
        ("COGNITO__USER_POOL_ID", pool_id),
        ("COGNITO__ENDPOINT_URL", cognito_endpoint),
        ("COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ("KRATOS__ADMIN_URL", kratos_admin_url),
        ("KRATOS__PUBLIC_URL", kratos_public_url),
    ]
    .map(|(key, value)| (format!("COGNITO_BRIDGE__{key}"), value.to_owned()));
    Settings::load_from(Some(&path), environment).expect("import settings load")
}

/// An import run as `cognito-bridge import` makes it, with moto's test credentials instead of
/// the AWS chain.
pub async fn run_import(
    settings: &Settings,
    options: ImportOptions,
) -> Result<ImportSummary, ImportError> {
    import::run(settings, options, Some(moto::test_credentials())).await
}

/// A dry run (`import --dry-run`) with `settings`, which must succeed.
pub async fn dry_run_import(settings: &Settings) -> ImportSummary {
    run_import(
        settings,
        ImportOptions {
            dry_run: true,
            ..ImportOptions::default()
        },
    )
    .await
    .expect("the dry run completes")
}

/// The store at `database`, as a second process would open it.
pub async fn open_store(database: &TestDatabase) -> Arc<dyn Store> {
    store::connect(&database.url.clone().into(), 2)
        .await
        .unwrap()
}

/// `--resume`.
pub fn resume() -> ImportOptions {
    ImportOptions {
        resume: true,
        ..ImportOptions::default()
    }
}

/// A directory fake and a Kratos double with default options, and settings for them.
pub async fn fake_world(
    backend: Backend,
    directory: DirectoryOptions,
    kratos: AdminDoubleOptions,
    extra: &str,
) -> (
    CognitoDirectoryFake,
    KratosAdminDouble,
    TestDatabase,
    Settings,
) {
    let cognito = CognitoDirectoryFake::start(directory).await;
    let kratos = KratosAdminDouble::start(kratos).await;
    let database = TestDatabase::new(backend).await;
    let settings = import_settings(
        &database.url,
        &cognito.endpoint,
        &cognito.user_pool_id,
        &kratos.url,
        extra,
    );
    (cognito, kratos, database, settings)
}

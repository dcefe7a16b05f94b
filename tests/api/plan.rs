//! `plan` against moto: a pool with aliases, custom attributes of each type, groups with
//! members (one with an IAM role), Lambda triggers, threat protection, a federated provider
//! and several app clients. The generated schema and configuration pass `import --dry-run` for
//! every seeded user, and the real Kratos v1.3.1 loads the schema with the generated hook
//! skeletons: a real import into it stores the Number as a JSON integer, the Boolean as a JSON
//! boolean and the groups as the `groups` trait, while a user whose Number is out of bounds
//! (refused by Kratos) or not a number (refused by the import) fails alone; PLAN.md names each
//! trigger, group and warning; files are never overwritten without `--force`; an
//! e-mail-as-username pool's plan passes the dry run with e-mail as the identifier and has no
//! groups trait; the command line's help and exit statuses (1 when Cognito cannot be read).

use std::path::Path;

use aws_sdk_cognitoidentityprovider::types::{
    AliasAttributeType, AttributeDataType, AttributeType, IdentityProviderTypeType,
    LambdaConfigType, NumberAttributeConstraintsType, SchemaAttributeType,
    StringAttributeConstraintsType, UserPoolAddOnsType,
};
use cognito_bridge::import::ImportOptions;
use cognito_bridge::plan::{self, PlanError, PlanOptions};

use cognito_bridge::cognito::directory::{Backoff, Directory, DirectoryError};
use cognito_bridge::config::CognitoPool;

use crate::doubles::cognito_directory_fake::{
    CognitoDirectoryFake, DirectoryOptions, synthetic_group_name,
};
use crate::helpers::bridge_output;
use crate::helpers::import::{
    dry_run_import, import_settings, import_settings_with_public_url, run_import,
};
use crate::helpers::{Backend, TestDatabase};
use crate::moto::{self, Pool, SeedUser};
use crate::ory::{Kratos, MigrateHook};

const USERS: usize = 8;

/// A group of the test pool and its members (seed numbers).
struct GroupSeed {
    name: &'static str,
    precedence: Option<i32>,
    description: &'static str,
    role_arn: Option<&'static str>,
    members: &'static [usize],
}

const GROUPS: [GroupSeed; 3] = [
    GroupSeed {
        name: "admins",
        precedence: Some(1),
        description: "People who run the shop",
        role_arn: Some("arn:aws:iam::123456789012:role/ShopAdmins"),
        members: &[0, 3],
    },
    GroupSeed {
        name: "beta",
        precedence: Some(5),
        description: "Early features",
        role_arn: None,
        members: &[0, 1],
    },
    GroupSeed {
        name: "support",
        precedence: None,
        description: "",
        role_arn: None,
        members: &[2],
    },
];

const TRIGGERS: [(&str, &str); 6] = [
    (
        "PreSignUp",
        "arn:aws:lambda:us-east-1:123456789012:function:pre-sign-up",
    ),
    (
        "PreAuthentication",
        "arn:aws:lambda:us-east-1:123456789012:function:pre-auth",
    ),
    (
        "PostAuthentication",
        "arn:aws:lambda:us-east-1:123456789012:function:post-auth",
    ),
    (
        "DefineAuthChallenge",
        "arn:aws:lambda:us-east-1:123456789012:function:define",
    ),
    (
        "CustomMessage",
        "arn:aws:lambda:us-east-1:123456789012:function:message",
    ),
    (
        "PostConfirmation",
        "arn:aws:lambda:us-east-1:123456789012:function:post-confirmation",
    ),
];

fn custom(name: &str, kind: AttributeDataType) -> SchemaAttributeType {
    let builder = SchemaAttributeType::builder()
        .name(name)
        .attribute_data_type(kind.clone())
        .mutable(true);
    match kind {
        AttributeDataType::Number => builder
            .number_attribute_constraints(
                NumberAttributeConstraintsType::builder()
                    .min_value("0")
                    .max_value("150")
                    .build(),
            )
            .build(),
        AttributeDataType::String => builder
            .string_attribute_constraints(
                StringAttributeConstraintsType::builder()
                    .min_length("1")
                    .max_length("32")
                    .build(),
            )
            .build(),
        _ => builder.build(),
    }
}

/// The test pool, its app client ids, and its users seeded.
async fn pool_with_everything() -> (Pool, Vec<String>) {
    let client = moto::admin_client().await;
    let mut lambda = LambdaConfigType::builder();
    for (name, arn) in TRIGGERS {
        lambda = match name {
            "PreSignUp" => lambda.pre_sign_up(arn),
            "PreAuthentication" => lambda.pre_authentication(arn),
            "PostAuthentication" => lambda.post_authentication(arn),
            "DefineAuthChallenge" => lambda.define_auth_challenge(arn),
            "PostConfirmation" => lambda.post_confirmation(arn),
            _ => lambda.custom_message(arn),
        };
    }
    let created = client
        .create_user_pool()
        .pool_name(format!("plan-{}", rand::random::<u32>()))
        .alias_attributes(AliasAttributeType::Email)
        .alias_attributes(AliasAttributeType::PhoneNumber)
        .lambda_config(lambda.build())
        .user_pool_add_ons(
            UserPoolAddOnsType::builder()
                .advanced_security_mode("ENFORCED".into())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create pool");
    let id = created.user_pool().unwrap().id().unwrap().to_owned();
    // Custom attributes after creation: moto drops the standard schema when `Schema` is given.
    client
        .add_custom_attributes()
        .user_pool_id(&id)
        .custom_attributes(custom("tenant", AttributeDataType::String))
        .custom_attributes(custom("age", AttributeDataType::Number))
        .custom_attributes(custom("vip", AttributeDataType::Boolean))
        .send()
        .await
        .expect("add custom attributes");
    client
        .create_identity_provider()
        .user_pool_id(&id)
        .provider_name("Google")
        .provider_type(IdentityProviderTypeType::Google)
        .provider_details("client_id", "google-client")
        .provider_details("client_secret", "google-secret")
        .provider_details("authorize_scopes", "openid email")
        .send()
        .await
        .expect("create identity provider");
    let mut client_ids = Vec::new();
    for name in ["web", "mobile", "backend"] {
        let app = client
            .create_user_pool_client()
            .user_pool_id(&id)
            .client_name(name)
            .generate_secret(name == "backend")
            .send()
            .await
            .expect("create app client");
        client_ids.push(
            app.user_pool_client()
                .unwrap()
                .client_id()
                .unwrap()
                .to_owned(),
        );
    }
    let pool = Pool {
        id,
        client_id: client_ids[0].clone(),
        client,
    };
    for i in 0..USERS {
        let user = SeedUser::numbered(i);
        pool.add_seed_user(&user).await;
        let mut extra = vec![
            ("custom:age", format!("{}", 20 + i)),
            ("custom:vip", (i % 2 == 0).to_string()),
        ];
        if i % 3 == 0 {
            extra.push(("phone_number", format!("+1555000{i:04}")));
            extra.push(("family_name", format!("Family{i}")));
        }
        let mut request = pool
            .client
            .admin_update_user_attributes()
            .user_pool_id(&pool.id)
            .username(&user.username);
        for (name, value) in extra {
            request = request.user_attributes(
                AttributeType::builder()
                    .name(name)
                    .value(value)
                    .build()
                    .unwrap(),
            );
        }
        request.send().await.expect("update attributes");
    }
    for group in &GROUPS {
        pool.client
            .create_group()
            .user_pool_id(&pool.id)
            .group_name(group.name)
            .set_precedence(group.precedence)
            .description(group.description)
            .set_role_arn(group.role_arn.map(str::to_owned))
            .send()
            .await
            .expect("create group");
        for i in group.members {
            pool.client
                .admin_add_user_to_group()
                .user_pool_id(&pool.id)
                .group_name(group.name)
                .username(SeedUser::numbered(*i).username)
                .send()
                .await
                .expect("add user to group");
        }
    }
    (pool, client_ids)
}

/// A seed user whose `custom:age` is `age` (which moto, unlike Cognito, does not check).
async fn add_user_aged(pool: &Pool, i: usize, age: &str) -> SeedUser {
    let user = SeedUser::numbered(i);
    pool.add_seed_user(&user).await;
    pool.client
        .admin_update_user_attributes()
        .user_pool_id(&pool.id)
        .username(&user.username)
        .user_attributes(
            AttributeType::builder()
                .name("custom:age")
                .value(age)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("update custom:age");
    user
}

/// The identity Kratos holds for seed user `i` (found by its e-mail trait).
fn identity_of(identities: &[serde_json::Value], i: usize) -> &serde_json::Value {
    let email = SeedUser::numbered(i).email;
    identities
        .iter()
        .find(|identity| {
            identity["traits"]["email"]
                .as_str()
                .is_some_and(|found| found.eq_ignore_ascii_case(&email))
        })
        .unwrap_or_else(|| panic!("no identity for seed user {i}"))
}

fn plan_settings(pool: &Pool, moto: &str) -> cognito_bridge::config::Settings {
    let dir = tempfile::tempdir().unwrap();
    let environment = [
        ("COGNITO__USER_POOL_ID", pool.id.as_str()),
        ("COGNITO__ENDPOINT_URL", moto),
        ("COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ("DATABASE__URL", "sqlite::memory:"),
    ]
    .map(|(key, value)| (format!("COGNITO_BRIDGE__{key}"), value.to_owned()));
    let path = dir.path().join("none.toml");
    std::fs::write(&path, "").unwrap();
    cognito_bridge::config::Settings::load_from(Some(&path), environment).unwrap()
}

/// The generated fragment with its `[import]` pointing at the generated schema.
fn generated_config(out: &Path) -> String {
    let fragment = std::fs::read_to_string(out.join("cognito-bridge.toml")).unwrap();
    assert_eq!(fragment.matches("[import]\n").count(), 1, "{fragment}");
    fragment.replace(
        "[import]\n",
        &format!(
            "[import]\nlist_rate = 30\nschema_file = \"{}\"\n",
            out.join("identity.schema.json").display()
        ),
    )
}

#[tokio::test]
async fn the_plan_fits_every_user_of_the_pool_and_loads_in_kratos_v1_3_1() {
    let (pool, client_ids) = pool_with_everything().await;
    let moto = moto::endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan");
    let summary = plan::run(
        &plan_settings(&pool, &moto),
        PlanOptions {
            out: out.clone(),
            force: false,
        },
        Some(moto::test_credentials()),
    )
    .await
    .unwrap();
    assert_eq!(summary.files.len(), 4);
    assert_eq!(summary.estimated_users, USERS as i64);
    assert_eq!(summary.app_clients, 3);
    assert_eq!(summary.groups, GROUPS.len());
    assert_eq!(summary.triggers, TRIGGERS.len());

    let plan_md = std::fs::read_to_string(out.join("PLAN.md")).unwrap();
    println!("{plan_md}");
    for (trigger, _) in TRIGGERS {
        assert!(
            plan_md.contains(&format!("**{trigger}**")),
            "{trigger}:\n{plan_md}"
        );
    }
    for warning in [
        "Identity pools",
        "AdvancedSecurityMode = ENFORCED",
        "Custom authentication challenge triggers (DefineAuthChallenge)",
        "Federated identity provider Google",
        "no account recovery by SMS",
        "IAM roles of groups do not map: admins (arn:aws:iam::123456789012:role/ShopAdmins)",
        "## Groups",
        "| `admins` | 1 | People who run the shop | `arn:aws:iam::123456789012:role/ShopAdmins` (does not map) |",
        "| `beta` | 5 | Early features | none |",
        "| `support` | none |  | none |",
    ] {
        assert!(plan_md.contains(warning), "{warning}:\n{plan_md}");
    }
    assert!(!plan_md.contains("copies it as a string"), "{plan_md}");
    for id in &client_ids {
        assert!(plan_md.contains(id.as_str()), "{id}");
    }
    let hooks = std::fs::read_to_string(out.join("kratos-hooks.yml")).unwrap();
    let hooks_yaml: serde_yaml::Value = serde_yaml::from_str(&hooks).unwrap();
    assert!(
        hooks_yaml["selfservice"]["flows"]["login"]["after"]["password"]["hooks"].is_sequence()
    );
    assert!(hooks.contains("# DefineAuthChallenge"), "{hooks}");
    let config = generated_config(&out);
    assert!(config.contains("tenant = \"custom:tenant\""), "{config}");
    assert!(
        config.contains("\"name.first\" = \"given_name\""),
        "{config}"
    );
    for line in [
        "groups_trait = \"groups\"",
        "age = \"integer\"",
        "vip = \"boolean\"",
        "updated_at = \"integer\"",
    ] {
        assert!(config.contains(line), "{line}:\n{config}");
    }
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("identity.schema.json")).unwrap())
            .unwrap();
    let traits = &schema["properties"]["traits"]["properties"];
    assert_eq!(traits["age"]["type"], "integer");
    assert_eq!(
        (&traits["age"]["minimum"], &traits["age"]["maximum"]),
        (&serde_json::json!(0), &serde_json::json!(150))
    );
    assert_eq!(traits["vip"]["type"], "boolean");
    assert_eq!(traits["groups"]["items"]["type"], "string");

    // The import's dry run checks every user's mapped traits against the generated schema.
    let database = TestDatabase::new(Backend::Sqlite).await;
    let unused = crate::doubles::cognito_auth_fake::unused_endpoint().await;
    let settings = import_settings(&database.url, &moto, &pool.id, &unused, &config);
    let dry = dry_run_import(&settings).await;
    assert_eq!(dry.counters.invalid, 0, "{dry:?}");
    assert_eq!(dry.counters.created, USERS as i64, "{dry:?}");

    // Two users Cognito would not hold but moto does: a Number above its bound, and one
    // that is no number. The dry run names both, the second without its value.
    let too_old = add_user_aged(&pool, 100, "200").await;
    let not_a_number = add_user_aged(&pool, 101, "secret-abc").await;
    let database = TestDatabase::new(Backend::Sqlite).await;
    let settings = import_settings(&database.url, &moto, &pool.id, &unused, &config);
    let dry = dry_run_import(&settings).await;
    assert_eq!(dry.counters.invalid, 2, "{dry:?}");
    assert_eq!(dry.counters.created, USERS as i64, "{dry:?}");
    let reasons_of = |username: &str| {
        dry.invalid
            .iter()
            .find(|example| example.cognito_username == username)
            .unwrap_or_else(|| panic!("{username} not invalid: {dry:?}"))
            .reasons
            .join("; ")
    };
    let reasons = reasons_of(&too_old.username);
    assert!(reasons.starts_with("/traits/age:"), "{reasons}");
    let reasons = reasons_of(&not_a_number.username);
    assert!(reasons.contains("`custom:age`"), "{reasons}");
    assert!(reasons.contains("an integer"), "{reasons}");
    assert!(!reasons.contains("secret-abc"), "{reasons}");

    // The real Kratos v1.3.1 loads the schema and the hook skeletons, and takes every user
    // through the schema.
    let schema_file = out.join("identity.schema.json");
    let skeletons: serde_json::Value = serde_yaml::from_str(&hooks).unwrap();
    let kratos = Kratos::start_with_schema_and(&MigrateHook::unused(), &schema_file, skeletons)
        .await
        .unwrap_or_else(|error| panic!("Kratos refused the plan: {error}"));
    let database = TestDatabase::new(Backend::Sqlite).await;
    let settings = import_settings_with_public_url(
        &database.url,
        &moto,
        &pool.id,
        kratos.admin_url.as_str(),
        kratos.public_url.as_str(),
        &config,
    );
    let real = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    // The out-of-bounds user is refused by Kratos, the other by the import: each alone.
    assert_eq!(real.counters.failed, 2, "{real:?}");
    assert_eq!(real.counters.created, USERS as i64, "{real:?}");
    let failure_of = |username: &str| {
        real.failures
            .iter()
            .find(|failure| failure.cognito_username == username)
            .unwrap_or_else(|| panic!("{username} did not fail: {real:?}"))
    };
    assert_eq!(failure_of(&too_old.username).status, Some(400), "{real:?}");
    let refused = failure_of(&not_a_number.username);
    assert!(refused.reason.contains("`custom:age`"), "{refused:?}");
    assert!(refused.reason.contains("an integer"), "{refused:?}");
    assert!(!refused.reason.contains("secret-abc"), "{refused:?}");
    let identities = kratos.identities().await;
    assert_eq!(identities.len(), USERS);
    // Read back from Kratos: a JSON integer, a JSON boolean, the groups as an array.
    for i in 0..USERS {
        let traits = &identity_of(&identities, i)["traits"];
        assert_eq!(traits["age"], serde_json::json!(20 + i), "{traits}");
        assert_eq!(traits["vip"], serde_json::json!(i % 2 == 0), "{traits}");
        let expected: Vec<&str> = GROUPS
            .iter()
            .filter(|group| group.members.contains(&i))
            .map(|group| group.name)
            .collect();
        assert_eq!(traits["groups"], serde_json::json!(expected), "{traits}");
    }
    let schema = kratos
        .client
        .get(kratos.public_url.join("schemas/default").unwrap())
        .send()
        .await
        .unwrap();
    assert!(schema.status().is_success());
}

#[tokio::test]
async fn plan_refuses_to_overwrite_without_force() {
    let pool = Pool::create_with_custom_attributes(true).await;
    let moto = moto::endpoint().await;
    let settings = plan_settings(&pool, &moto);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    std::fs::write(out.join("PLAN.md"), "mine").unwrap();
    let options = PlanOptions {
        out: out.clone(),
        force: false,
    };
    let error = plan::run(&settings, options.clone(), Some(moto::test_credentials()))
        .await
        .unwrap_err();
    assert!(matches!(error, PlanError::Usage(_)), "{error}");
    assert!(error.to_string().contains("PLAN.md"), "{error}");
    assert_eq!(
        std::fs::read_to_string(out.join("PLAN.md")).unwrap(),
        "mine"
    );
    assert!(
        !out.join("identity.schema.json").exists(),
        "nothing written"
    );

    plan::run(
        &settings,
        PlanOptions {
            force: true,
            ..options
        },
        Some(moto::test_credentials()),
    )
    .await
    .unwrap();
    assert!(
        std::fs::read_to_string(out.join("PLAN.md"))
            .unwrap()
            .contains(&pool.id)
    );

    // The command line: the same refusal exits 2.
    let output = bridge_output(
        &["plan", "--out", out.to_str().unwrap()],
        &[
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", pool.id.as_str()),
            ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", moto.as_str()),
            ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
}

#[tokio::test]
async fn plan_help_explains_the_command_and_usage_errors_exit_2() {
    let output = bridge_output(&["plan", "--help"], &[]).await;
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--out",
        "--force",
        "identity.schema.json",
        "PLAN.md",
        "Exit status",
        "ListGroups",
        "[import.trait_types]",
        "import.groups_trait",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    let top = bridge_output(&["--help"], &[]).await;
    assert!(String::from_utf8_lossy(&top.stdout).contains("plan"));
    for args in [&["plan", "--unknown"][..], &["plan", "--out"][..]] {
        let output = bridge_output(args, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    let output = bridge_output(&["plan"], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cognito.user_pool_id"), "{stderr}");
    // A type for a trait that is not mapped, and an unknown type: configuration errors.
    for (variable, value, expected) in [
        (
            "COGNITO_BRIDGE__IMPORT__TRAIT_TYPES__AGEE",
            "integer",
            "`agee` has a type but is no trait path of import.traits",
        ),
        (
            "COGNITO_BRIDGE__IMPORT__TRAIT_TYPES__EMAIL",
            "int",
            "`int` is not a trait type",
        ),
    ] {
        let output = bridge_output(&["plan"], &[(variable, value)]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("import.trait_types"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[tokio::test]
async fn an_email_as_username_pool_plans_email_as_the_identifier_and_passes_the_dry_run() {
    let pool = Pool::create_with_custom_attributes(true).await;
    for i in 0..4 {
        let mut user = SeedUser::numbered(i);
        user.username = user.email.clone();
        pool.add_seed_user(&user).await;
    }
    let moto = moto::endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan");
    plan::run(
        &plan_settings(&pool, &moto),
        PlanOptions {
            out: out.clone(),
            force: false,
        },
        Some(moto::test_credentials()),
    )
    .await
    .unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("identity.schema.json")).unwrap())
            .unwrap();
    let traits = &schema["properties"]["traits"]["properties"];
    assert_eq!(
        traits["email"]["ory.sh/kratos"]["credentials"]["password"]["identifier"],
        true
    );
    assert!(traits["phone_number"].get("ory.sh/kratos").is_none());
    assert!(traits.get("groups").is_none(), "a pool without groups");
    let fragment = std::fs::read_to_string(out.join("cognito-bridge.toml")).unwrap();
    assert!(!fragment.contains("groups_trait"), "{fragment}");
    let plan_md = std::fs::read_to_string(out.join("PLAN.md")).unwrap();
    assert!(plan_md.contains("UsernameAttributes email"), "{plan_md}");
    assert!(plan_md.contains("## Groups\n\nNone"), "{plan_md}");
    assert!(plan_md.contains("## Lambda triggers\n\nNone."), "{plan_md}");

    let database = TestDatabase::new(Backend::Sqlite).await;
    let unused = crate::doubles::cognito_auth_fake::unused_endpoint().await;
    let settings = import_settings(
        &database.url,
        &moto,
        &pool.id,
        &unused,
        &generated_config(&out),
    );
    let dry = dry_run_import(&settings).await;
    assert_eq!(dry.counters.invalid, 0, "{dry:?}");
    assert_eq!(dry.counters.created, 4, "{dry:?}");
}

#[tokio::test]
async fn plan_exits_1_when_cognito_is_unreachable_and_writes_nothing() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan");
    let output = bridge_output(
        &["plan", "--out", out.to_str().unwrap()],
        &[
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc"),
            ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", closed.as_str()),
            ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("DescribeUserPool"), "{stderr}");
    assert!(!out.exists(), "nothing written");
}

#[tokio::test]
async fn the_groups_are_read_page_by_page_and_a_refusal_names_list_groups() {
    let cognito = CognitoDirectoryFake::start(DirectoryOptions {
        groups: 130,
        ..DirectoryOptions::default()
    })
    .await;
    let pool = CognitoPool {
        region: "us-east-1".to_owned(),
        user_pool_id: cognito.user_pool_id.clone(),
        endpoint_url: Some(cognito.endpoint.parse().unwrap()),
    };
    let directory = Directory::new(
        &pool,
        1000.0,
        Backoff::default(),
        Some(moto::test_credentials()),
    )
    .await;
    let groups = directory.groups().await.unwrap();
    assert_eq!(groups.len(), 130);
    assert_eq!(cognito.calls("ListGroups"), 3, "60 a page");
    assert_eq!(groups[129].name, synthetic_group_name(129));
    assert_eq!(groups[1].precedence, Some(1));
    assert_eq!(groups[1].description.as_deref(), Some("synthetic group 1"));
    assert_eq!(groups[1].role_arn, None);

    let elsewhere = CognitoPool {
        user_pool_id: "us-east-1_Elsewhere".to_owned(),
        ..pool
    };
    let directory = Directory::new(
        &elsewhere,
        1000.0,
        Backoff::default(),
        Some(moto::test_credentials()),
    )
    .await;
    match directory.groups().await.unwrap_err() {
        DirectoryError::Refused {
            operation, code, ..
        } => {
            assert_eq!(operation, "ListGroups");
            assert_eq!(code, "ResourceNotFoundException");
        }
        other => panic!("{other}"),
    }
}

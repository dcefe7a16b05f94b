//! The plan's text files: the `cognito-bridge.toml` fragment, the Kratos hook skeletons
//! (`kratos-hooks.yml`) and `PLAN.md`. Plain functions of the pool's description.
//!
//! Over 400 lines: three renderers side by side, each mostly the text it writes, and about 85
//! lines of tests of that text below the code.

use std::fmt::Write;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::mfa_text::MfaPlan;
use super::schema::{AttributePlan, GROUPS_TRAIT, SignIn, Target};
use crate::cognito::{AppClient, AttributeKind, PoolDescription};
use crate::config::TraitType;

/// Triggers of Cognito's custom authentication challenge: no Kratos equivalent.
const CUSTOM_AUTH_TRIGGERS: [&str; 3] = [
    "DefineAuthChallenge",
    "CreateAuthChallenge",
    "VerifyAuthChallengeResponse",
];

/// The nearest Kratos hook of a Lambda trigger (notes C4): where a `web_hook` goes and its
/// `response` settings, or why none exists.
pub enum Nearest {
    Hook {
        /// Config paths, each `selfservice.flows.….hooks`.
        paths: &'static [&'static str],
        response: Option<Value>,
        note: &'static str,
    },
    None(&'static str),
}

pub fn nearest(trigger: &str) -> Nearest {
    match trigger {
        "PreSignUp" => Nearest::Hook {
            paths: &["selfservice.flows.registration.after.password.hooks"],
            response: Some(json!({"parse": true})),
            note: "runs before the identity is stored; an answer >= 400 with messages rejects, \
                   200 with {\"identity\": …} modifies; identities created through the admin \
                   API (the import) trigger no hook",
        },
        "PostConfirmation" => Nearest::Hook {
            paths: &[
                "selfservice.flows.verification.after.hooks",
                "selfservice.flows.recovery.after.hooks",
            ],
            response: None,
            note: "verification after (sign-up confirmed) and recovery after (forgot password; \
                   runs when the code is accepted, before the new password is set)",
        },
        "PreAuthentication" => Nearest::Hook {
            paths: &["selfservice.flows.login.after.password.hooks"],
            response: Some(json!({"parse": true})),
            note: "runs after the password check, not before it (no pre-credential hook has \
                   the identity); it can still abort before the session is issued",
        },
        "PostAuthentication" => Nearest::Hook {
            paths: &["selfservice.flows.login.after.password.hooks"],
            response: Some(json!({"ignore": true})),
            note: "after a successful password login; response.ignore makes it asynchronous",
        },
        "DefineAuthChallenge" | "CreateAuthChallenge" | "VerifyAuthChallengeResponse" => {
            Nearest::None(
                "custom authentication challenges have no Kratos equivalent (fixed methods: \
                 password, code, totp, webauthn, passkey, lookup_secret, oidc)",
            )
        }
        "PreTokenGeneration" => Nearest::None(
            "not a Kratos hook: Hydra's oauth2.token_hook, or the consent app setting \
             session.id_token / session.access_token; for Kratos-issued JWTs \
             session.whoami.tokenizer.templates",
        ),
        "UserMigration" => Nearest::None(
            "this bridge's password migration hook \
             (selfservice.methods.password.config.migrate_hook) replaces it, for imported \
             identities only",
        ),
        "CustomMessage" => Nearest::None(
            "courier templates (courier.templates.*, courier.template_override_path): static \
             templates, not a hook",
        ),
        "CustomEmailSender" => Nearest::None(
            "courier.delivery_strategy: http with courier.http.request_config (not a flow hook)",
        ),
        "CustomSMSSender" => Nearest::None(
            "courier.channels: [{id: sms, type: http, request_config: …}] (not a flow hook)",
        ),
        "KMSKeyID" => Nearest::None(
            "no equivalent: courier HTTP payloads are plaintext (Kratos encrypts its own data \
             with secrets.cipher)",
        ),
        "InboundFederation" => Nearest::None(
            "the OIDC provider's mapper_url (jsonnet) in selfservice.methods.oidc.config.providers",
        ),
        _ => Nearest::None("unknown trigger: no mapping known"),
    }
}

/// A TOML key, quoted unless bare.
fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// The `cognito-bridge.toml` fragment: `[import]` (the groups trait when the pool has groups),
/// `[import.traits]`, `[import.trait_types]` and `[capture] app_client_ids`.
pub fn config_fragment(
    pool: &PoolDescription,
    plans: &[AttributePlan],
    apps: &[AppClient],
    schema_path: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by `cognito-bridge plan` from user pool {}: merge into cognito-bridge.toml.\n",
        pool.id
    );
    out.push_str("[import]\n");
    let _ = writeln!(
        out,
        "# A dry run checks every user against the generated schema with:\n\
         # schema_file = {}",
        Value::String(schema_path.to_owned())
    );
    if !pool.groups.is_empty() {
        let _ = writeln!(
            out,
            "groups_trait = {}             # the user's Cognito groups, an array of names",
            Value::String(GROUPS_TRAIT.to_owned())
        );
    }
    out.push_str("\n[import.traits]                    # Kratos trait path = Cognito attribute\n");
    let mut typed = Vec::new();
    for plan in plans {
        match &plan.target {
            Target::Trait(path) => {
                let _ = writeln!(
                    out,
                    "{} = {}",
                    toml_key(path),
                    Value::String(plan.attribute.name.clone())
                );
                if plan.trait_type() != TraitType::String {
                    typed.push((path, plan.trait_type()));
                }
            }
            Target::Skipped(why) => {
                let _ = writeln!(out, "# {}: not a trait ({why})", plan.attribute.name);
            }
        }
    }
    if !typed.is_empty() {
        out.push_str(
            "\n[import.trait_types]               # the JSON type the import converts the value to\n",
        );
        for (path, kind) in typed {
            let _ = writeln!(
                out,
                "{} = {}",
                toml_key(path),
                Value::String(kind.as_str().to_owned())
            );
        }
    }
    out.push_str("\n[capture]\n");
    let ids: Vec<String> = apps
        .iter()
        .map(|app| Value::String(app.client_id.clone()).to_string())
        .collect();
    let _ = writeln!(out, "app_client_ids = [{}]", ids.join(", "));
    out
}

/// A YAML rendering of `value` (JSON scalars are YAML scalars), indented by `indent`.
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match child {
                    Value::Object(inner) if !inner.is_empty() => {
                        let _ = writeln!(out, "{pad}{key}:");
                        yaml(child, indent + 2, out);
                    }
                    Value::Array(items) if !items.is_empty() => {
                        let _ = writeln!(out, "{pad}{key}:");
                        yaml(child, indent + 2, out);
                    }
                    scalar => {
                        let _ = writeln!(out, "{pad}{key}: {scalar}");
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let mut nested = String::new();
                yaml(item, indent + 2, &mut nested);
                let trimmed = nested.trim_start();
                let _ = write!(out, "{pad}- {trimmed}");
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{scalar}");
        }
    }
}

/// The jsonnet body of every skeleton: the identity Kratos hands the hook.
const SKELETON_BODY: &str =
    "function(ctx) { identity: if std.objectHas(ctx, 'identity') then ctx.identity else null }\n";

/// `kratos-hooks.yml`: a `web_hook` skeleton at the nearest hook point of each configured
/// trigger, and a comment for each trigger that has none.
pub fn hooks_yaml(pool: &PoolDescription) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by `cognito-bridge plan` from user pool {}: Kratos v1.3.1 hook skeletons\n\
         # for the pool's Lambda triggers. Merge into kratos.yml; point each url at your service.",
        pool.id
    );
    if pool.triggers.is_empty() {
        out.push_str("# The pool has no Lambda triggers: nothing to carry over.\n");
    }
    let body = format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(SKELETON_BODY)
    );
    let mut document = Value::Object(Map::new());
    for (trigger, arn) in &pool.triggers {
        match nearest(trigger) {
            Nearest::Hook {
                paths,
                response,
                note,
            } => {
                let _ = writeln!(
                    out,
                    "# {trigger} ({arn}) -> {}: {note}",
                    paths.join(" and ")
                );
                for path in paths {
                    let mut config = json!({
                        "url": format!("https://hooks.example.com/cognito/{trigger}"),
                        "method": "POST",
                        "body": body,
                    });
                    if let Some(response) = &response {
                        config["response"] = response.clone();
                    }
                    let mut node = &mut document;
                    for segment in path.split('.') {
                        node = node
                            .as_object_mut()
                            .expect("an object")
                            .entry(segment)
                            .or_insert_with(|| {
                                if segment == "hooks" {
                                    json!([])
                                } else {
                                    json!({})
                                }
                            });
                    }
                    node.as_array_mut()
                        .expect("hooks is a list")
                        .push(json!({"hook": "web_hook", "config": config}));
                }
            }
            Nearest::None(why) => {
                let _ = writeln!(out, "# {trigger} ({arn}) -> no Kratos hook: {why}");
            }
        }
    }
    if document.as_object().is_some_and(|map| !map.is_empty()) {
        yaml(&document, 0, &mut out);
    }
    out
}

fn kind(kind: AttributeKind) -> &'static str {
    match kind {
        AttributeKind::String => "String",
        AttributeKind::Number => "Number",
        AttributeKind::DateTime => "DateTime",
        AttributeKind::Boolean => "Boolean",
    }
}

/// What will not carry over, one line each.
pub fn warnings(
    pool: &PoolDescription,
    plans: &[AttributePlan],
    sign_in: &SignIn,
    mfa: &MfaPlan,
) -> Vec<String> {
    let mut warnings = vec![
        "Identity pools (Cognito federated identities: AWS credentials for signed-in users) \
         are not part of a user pool and do not map to Kratos; list them with \
         `aws cognito-identity list-identity-pools` and plan their replacement separately."
            .to_owned(),
    ];
    if sign_in.username_only {
        warnings.push(format!(
            "The pool signs in with a username only (no UsernameAttributes or AliasAttributes); \
             the username is no attribute, so the schema uses {} as the login identifier.",
            if sign_in.identifiers.is_empty() {
                "nothing"
            } else {
                "the e-mail address"
            }
        ));
    }
    if sign_in.identifiers.iter().any(|id| id == "phone_number") {
        warnings.push(
            "phone_number is a login identifier, but Kratos v1.3.1 has no account recovery by \
             SMS: users without an e-mail address cannot recover their account."
                .to_owned(),
        );
    }
    if let Some(mode) = &pool.advanced_security {
        warnings.push(format!(
            "Threat protection (UserPoolAddOns.AdvancedSecurityMode = {mode}) has no Kratos \
             equivalent: adaptive authentication and compromised-credential checks end at the \
             cutover (Kratos can check passwords against haveibeenpwned)."
        ));
    }
    let custom: Vec<&str> = pool
        .triggers
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| CUSTOM_AUTH_TRIGGERS.contains(name))
        .collect();
    if !custom.is_empty() {
        warnings.push(format!(
            "Custom authentication challenge triggers ({}) have no Kratos equivalent: apps using \
             CUSTOM_AUTH must move to one of Kratos's methods.",
            custom.join(", ")
        ));
    }
    if pool.mfa_configuration != "OFF" {
        warnings.push(mfa.warning(&pool.mfa_configuration));
        if pool.sms_configured {
            warnings.push(
                "SMS MFA (an SMS configuration is set) has no Kratos v1.3.1 equivalent as a \
                 second factor."
                    .to_owned(),
            );
        }
    }
    for (name, kind) in &pool.identity_providers {
        warnings.push(format!(
            "Federated identity provider {name} ({kind}): configure it as a Kratos OIDC provider \
             (selfservice.methods.oidc.config.providers); its users (EXTERNAL_PROVIDER) are \
             skipped by the import and link again at their first login."
        ));
    }
    let with_roles: Vec<String> = pool
        .groups
        .iter()
        .filter_map(|group| {
            let arn = group.role_arn.as_ref()?;
            Some(format!("{} ({arn})", group.name))
        })
        .collect();
    if !with_roles.is_empty() {
        warnings.push(format!(
            "IAM roles of groups do not map: {}. Kratos hands out no AWS credentials and \
             knows no roles; the `groups` trait keeps the membership only, so apps that get \
             AWS credentials through an identity pool and the group's role need another way.",
            with_roles.join(", ")
        ));
    }
    let dates: Vec<&str> = plans
        .iter()
        .filter(|plan| {
            plan.attribute.kind == AttributeKind::DateTime
                && matches!(plan.target, Target::Trait(_))
        })
        .map(|plan| plan.attribute.name.as_str())
        .collect();
    if !dates.is_empty() {
        warnings.push(format!(
            "DateTime attributes ({}) are copied as the string Cognito lists: the schema checks \
             no date format.",
            dates.join(", ")
        ));
    }
    warnings
}

/// A table cell: no line breaks, no column separators.
fn cell(text: &str) -> String {
    text.replace(['\r', '\n'], " ").replace('|', "\\|")
}

/// The `## Groups` section of `PLAN.md`.
fn groups_section(pool: &PoolDescription, out: &mut String) {
    out.push_str("## Groups\n\n");
    if pool.groups.is_empty() {
        out.push_str("None: the schema has no `groups` trait.\n\n");
        return;
    }
    out.push_str("| group | precedence | description | IAM role |\n| --- | --- | --- | --- |\n");
    for group in &pool.groups {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            cell(&group.name),
            group
                .precedence
                .map_or_else(|| "none".to_owned(), |p| p.to_string()),
            group.description.as_deref().map_or_else(String::new, cell),
            group.role_arn.as_deref().map_or_else(
                || "none".to_owned(),
                |arn| format!("`{arn}` (does not map)")
            ),
        );
    }
    let _ = writeln!(
        out,
        "\nEach identity gets its groups' names as the `{GROUPS_TRAIT}` trait (an array, sorted, \
         not a login identifier; `import.groups_trait`). Precedence has no Kratos equivalent: \
         apps that picked the group with the lowest precedence decide from the names.\n"
    );
}

/// `PLAN.md`.
pub fn plan_markdown(
    pool: &PoolDescription,
    plans: &[AttributePlan],
    sign_in: &SignIn,
    apps: &[AppClient],
    mfa: &MfaPlan,
) -> String {
    let mut out = String::new();
    let title = if pool.name.is_empty() {
        pool.id.clone()
    } else {
        format!("{} ({})", pool.id, pool.name)
    };
    let _ = writeln!(out, "# Migration plan for Cognito user pool {title}\n");
    let _ = writeln!(
        out,
        "Users: about {} (`EstimatedNumberOfUsers`).\n",
        pool.estimated_users
    );
    let _ = writeln!(
        out,
        "Sign-in: {}; login identifiers in Kratos: {}.\n",
        if sign_in.username_only {
            "username".to_owned()
        } else {
            let mut how = Vec::new();
            if !pool.username_attributes.is_empty() {
                how.push(format!(
                    "UsernameAttributes {}",
                    pool.username_attributes.join(", ")
                ));
            }
            if !pool.alias_attributes.is_empty() {
                how.push(format!(
                    "AliasAttributes {}",
                    pool.alias_attributes.join(", ")
                ));
            }
            how.join("; ")
        },
        if sign_in.identifiers.is_empty() {
            "none".to_owned()
        } else {
            sign_in.identifiers.join(", ")
        }
    );
    out.push_str(
        "## Attributes\n\n| attribute | type | required | trait |\n| --- | --- | --- | --- |\n",
    );
    for plan in plans {
        let target = match &plan.target {
            Target::Trait(path) => format!("`{path}`"),
            Target::Skipped(why) => format!("none: {why}"),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {target} |",
            plan.attribute.name,
            kind(plan.attribute.kind),
            if plan.attribute.required { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        out,
        "\nThe traits are in `identity.schema.json`, their mapping in `cognito-bridge.toml` \
         (`[import.traits]`, their types in `[import.trait_types]`): the import converts a \
         Number to an integer (Cognito's bounds are the schema's `minimum` and `maximum`) and a \
         Boolean to true or false; a user whose value does not convert fails alone.\n"
    );
    groups_section(pool, &mut out);
    out.push_str("## App clients\n\n");
    if apps.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| client id | name | OAuth flows | secret |\n| --- | --- | --- | --- |\n");
        for app in apps {
            let flows = if app.oauth_enabled && !app.flows.is_empty() {
                app.flows.join(", ")
            } else {
                "none (SDK sign-in only: no Hydra client)".to_owned()
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {flows} | {} |",
                app.client_id,
                app.name,
                if app.secret.is_some() { "yes" } else { "no" }
            );
        }
        out.push_str(
            "\n`cognito-bridge clients` creates their Hydra clients; `[capture] app_client_ids` \
             lists them all.\n",
        );
    }
    out.push_str("\n## Lambda triggers\n\n");
    if pool.triggers.is_empty() {
        out.push_str("None.\n");
    }
    for (trigger, arn) in &pool.triggers {
        let line = match nearest(trigger) {
            Nearest::Hook { paths, note, .. } => {
                format!("web_hook at `{}` ({note})", paths.join("` and `"))
            }
            Nearest::None(why) => format!("no Kratos hook: {why}"),
        };
        let _ = writeln!(out, "- **{trigger}** (`{arn}`): {line}");
    }
    if !pool.triggers.is_empty() {
        out.push_str("\nThe skeletons are in `kratos-hooks.yml`.\n");
    }
    out.push_str("\n## MFA\n\n");
    let _ = writeln!(out, "`MfaConfiguration`: {}.", pool.mfa_configuration);
    out.push('\n');
    out.push_str(&mfa.section());
    out.push_str("\n## Does not map\n\n");
    for warning in warnings(pool, plans, sign_in, mfa) {
        let _ = writeln!(out, "- {warning}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cognito::PoolAttribute;

    fn pool() -> PoolDescription {
        PoolDescription {
            id: "eu-west-1_test".to_owned(),
            estimated_users: 3,
            attributes: vec![
                PoolAttribute::new("email", AttributeKind::String),
                PoolAttribute::new("custom:tenant", AttributeKind::String),
            ],
            alias_attributes: vec!["email".to_owned(), "phone_number".to_owned()],
            mfa_configuration: "OPTIONAL".to_owned(),
            sms_configured: true,
            triggers: vec![
                ("PreSignUp".to_owned(), "arn:pre".to_owned()),
                ("PreAuthentication".to_owned(), "arn:preauth".to_owned()),
                ("PostAuthentication".to_owned(), "arn:postauth".to_owned()),
                ("DefineAuthChallenge".to_owned(), "arn:define".to_owned()),
            ],
            advanced_security: Some("ENFORCED".to_owned()),
            identity_providers: vec![("Google".to_owned(), "Google".to_owned())],
            ..PoolDescription::default()
        }
    }

    #[test]
    fn hooks_yaml_puts_skeletons_at_the_nearest_points_and_comments_the_rest() {
        let text = hooks_yaml(&pool());
        let document: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let login = &document["selfservice"]["flows"]["login"]["after"]["password"]["hooks"];
        assert_eq!(login.as_sequence().unwrap().len(), 2, "{text}");
        assert_eq!(
            login[0]["config"]["response"]["parse"],
            serde_yaml::Value::Bool(true)
        );
        assert_eq!(
            login[1]["config"]["response"]["ignore"],
            serde_yaml::Value::Bool(true)
        );
        let signup =
            &document["selfservice"]["flows"]["registration"]["after"]["password"]["hooks"];
        assert_eq!(signup[0]["hook"], serde_yaml::Value::from("web_hook"));
        assert!(text.contains("# DefineAuthChallenge (arn:define) -> no Kratos hook"));
    }

    /// The fragment as the `config` crate reads it.
    fn toml_value(text: &str) -> Value {
        ::config::Config::builder()
            .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    #[test]
    fn config_fragment_parses_as_toml_with_every_trait() {
        let pool = pool();
        let plans = super::super::schema::attribute_plans(&pool);
        let text = config_fragment(&pool, &plans, &[], "plan/identity.schema.json");
        let value = toml_value(&text);
        assert_eq!(value["import"]["traits"]["email"], "email");
        assert_eq!(value["import"]["traits"]["tenant"], "custom:tenant");
        assert_eq!(value["capture"]["app_client_ids"], json!([]));
    }

    #[test]
    fn the_plan_names_triggers_and_warnings() {
        let pool = pool();
        let plans = super::super::schema::attribute_plans(&pool);
        let sign_in = SignIn::of(&pool);
        let text = plan_markdown(&pool, &plans, &sign_in, &[], &MfaPlan::default());
        for needle in [
            "about 3",
            "**PreSignUp**",
            "**DefineAuthChallenge**",
            "Identity pools",
            "AdvancedSecurityMode = ENFORCED",
            "Custom authentication challenge triggers (DefineAuthChallenge)",
            "SMS MFA",
            "Federated identity provider Google",
            "no account recovery by SMS",
            "`custom:tenant` | String | no | `tenant`",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }

    fn typed_pool_with_groups() -> PoolDescription {
        let mut age = PoolAttribute::new("custom:age", AttributeKind::Number);
        age.min_value = Some("0".to_owned());
        PoolDescription {
            attributes: vec![
                PoolAttribute::new("email", AttributeKind::String),
                age,
                PoolAttribute::new("custom:vip", AttributeKind::Boolean),
                PoolAttribute::new("custom:joined", AttributeKind::DateTime),
            ],
            groups: vec![
                crate::cognito::PoolGroup {
                    name: "admins".to_owned(),
                    description: Some("People | who\nrun it".to_owned()),
                    precedence: Some(1),
                    role_arn: Some("arn:aws:iam::123456789012:role/Admins".to_owned()),
                },
                crate::cognito::PoolGroup {
                    name: "beta".to_owned(),
                    description: None,
                    precedence: None,
                    role_arn: None,
                },
            ],
            ..pool()
        }
    }

    #[test]
    fn typed_traits_and_groups_go_into_the_fragment() {
        let pool = typed_pool_with_groups();
        let plans = super::super::schema::attribute_plans(&pool);
        let text = config_fragment(&pool, &plans, &[], "plan/identity.schema.json");
        let value = toml_value(&text);
        assert_eq!(value["import"]["groups_trait"], "groups", "{text}");
        assert_eq!(value["import"]["traits"]["age"], "custom:age");
        assert_eq!(
            value["import"]["trait_types"],
            json!({"age": "integer", "vip": "boolean"}),
            "{text}"
        );
        // What the plan writes loads as the import's configuration.
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        let settings = crate::config::Settings::load_from(Some(file.path()), Vec::new()).unwrap();
        assert_eq!(settings.import.trait_type("age"), TraitType::Integer);
        assert_eq!(settings.import.trait_type("joined"), TraitType::String);
        assert_eq!(settings.import.groups_trait(), Some("groups"));

        // A pool without groups or typed attributes: neither key.
        let plain = self::pool();
        let plans = super::super::schema::attribute_plans(&plain);
        let text = config_fragment(&plain, &plans, &[], "plan/identity.schema.json");
        assert!(!text.contains("groups_trait"), "{text}");
        assert!(!text.contains("trait_types"), "{text}");
    }

    #[test]
    fn plan_md_lists_the_groups_and_what_does_not_map() {
        let pool = typed_pool_with_groups();
        let plans = super::super::schema::attribute_plans(&pool);
        let sign_in = SignIn::of(&pool);
        let text = plan_markdown(&pool, &plans, &sign_in, &[], &MfaPlan::default());
        for needle in [
            "## Groups",
            "| `admins` | 1 | People \\| who run it | `arn:aws:iam::123456789012:role/Admins` (does not map) |",
            "| `beta` | none |  | none |",
            "IAM roles of groups do not map: admins (arn:aws:iam::123456789012:role/Admins)",
            "DateTime attributes (custom:joined)",
            "`custom:age` | Number | no | `age`",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert!(!text.contains("copies it as a string"), "{text}");
        let plain = plan_markdown(&self::pool(), &plans, &sign_in, &[], &MfaPlan::default());
        assert!(plain.contains("## Groups\n\nNone"), "{plain}");
        assert!(!plain.contains("IAM roles of groups"), "{plain}");
    }
}

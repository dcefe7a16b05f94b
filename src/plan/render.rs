//! The plan's text files: the `cognito-bridge.toml` fragment, the Kratos hook skeletons
//! (`kratos-hooks.yml`) and `PLAN.md`. Plain functions of the pool's description.
//!
//! Over 400 lines: three renderers side by side, each mostly the text it writes, and about 85
//! lines of tests of that text below the code.

use std::fmt::Write;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::mfa_text::MfaPlan;
use super::schema::{AttributePlan, SignIn, Target};
use crate::cognito::{AppClient, AttributeKind, PoolDescription};

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

/// The `cognito-bridge.toml` fragment: `[import.traits]` and `[capture] app_client_ids`.
pub fn config_fragment(
    pool: &PoolDescription,
    plans: &[AttributePlan],
    apps: &[AppClient],
    schema_path: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated by `cognito-bridge plan` from user pool {}: merge into cognito-bridge.toml.",
        pool.id
    );
    let _ = writeln!(
        out,
        "# A dry run checks every user against the generated schema with, under [import]:\n\
         # schema_file = {}\n",
        Value::String(schema_path.to_owned())
    );
    out.push_str("[import.traits]                    # Kratos trait path = Cognito attribute\n");
    for plan in plans {
        match &plan.target {
            Target::Trait(path) => {
                let _ = writeln!(
                    out,
                    "{} = {}",
                    toml_key(path),
                    Value::String(plan.attribute.name.clone())
                );
            }
            Target::Skipped(why) => {
                let _ = writeln!(out, "# {}: not a trait ({why})", plan.attribute.name);
            }
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
    for plan in plans {
        if plan.attribute.kind == AttributeKind::Number
            && (plan.attribute.min_value.is_some() || plan.attribute.max_value.is_some())
            && matches!(plan.target, Target::Trait(_))
        {
            warnings.push(format!(
                "{}: the import copies it as a string, so the schema checks its digits, not \
                 Cognito's bounds.",
                plan.attribute.name
            ));
        }
    }
    warnings
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
         (`[import.traits]`). Number and Boolean attributes stay strings, as the import copies \
         them.\n"
    );
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

    #[test]
    fn config_fragment_parses_as_toml_with_every_trait() {
        let pool = pool();
        let plans = super::super::schema::attribute_plans(&pool);
        let text = config_fragment(&pool, &plans, &[], "plan/identity.schema.json");
        let value: Value = ::config::Config::builder()
            .add_source(::config::File::from_str(&text, ::config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
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
}

//! Lines 4: each Lambda trigger of the pool against the Kratos configuration (`--kratos-yml`).
//! A trigger with a Kratos hook point passes when a `web_hook` sits there (`UserMigration`:
//! the password `migrate_hook` is enabled with a URL); a trigger with no web hook equivalent
//! is a warning that does not fail the check.

use std::path::Path;

use serde_yaml::Value;

use super::CheckLine;

/// Where a trigger's work goes in Kratos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerVerdict {
    /// A `web_hook` under any of these `selfservice.flows` paths.
    WebHook(&'static [&'static [&'static str]]),
    /// `selfservice.methods.password.config.migrate_hook`, enabled with a URL.
    MigrateHook,
    /// No web hook does this job; the nearest Kratos feature.
    NoEquivalent(&'static str),
}

/// The Kratos hook point of a Cognito trigger (the facts' notes, section C4).
pub fn trigger_verdict(trigger: &str) -> TriggerVerdict {
    use TriggerVerdict::*;
    match trigger {
        "PreSignUp" => WebHook(&[&["registration", "before"], &["registration", "after"]]),
        "PostConfirmation" => WebHook(&[&["verification", "after"], &["recovery", "after"]]),
        "PreAuthentication" => WebHook(&[&["login", "before"], &["login", "after"]]),
        "PostAuthentication" => WebHook(&[&["login", "after"]]),
        "UserMigration" => MigrateHook,
        "CustomMessage" => NoEquivalent("courier templates (courier.template_override_path)"),
        "CustomEmailSender" => NoEquivalent("courier.delivery_strategy: http"),
        "CustomSMSSender" => NoEquivalent("an http courier channel with id sms"),
        "PreTokenGeneration" => NoEquivalent("Hydra's oauth2.token_hook or the consent app"),
        "InboundFederation" => NoEquivalent("an OIDC provider's mapper_url"),
        "KMSKeyID" => NoEquivalent("none (courier HTTP payloads are plaintext)"),
        _ => NoEquivalent("none (custom authentication challenges have no Kratos method)"),
    }
}

/// The parsed `kratos.yml`.
#[derive(Debug, Clone)]
pub struct KratosHooks {
    root: Value,
}

impl KratosHooks {
    /// Read and parse `path`; the message names the file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("--kratos-yml {}: {error}", path.display()))?;
        Self::parse(&text).map_err(|error| format!("--kratos-yml {}: {error}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let root: Value = serde_yaml::from_str(text).map_err(|error| error.to_string())?;
        Ok(Self { root })
    }

    fn at(&self, path: &[&str]) -> Option<&Value> {
        path.iter()
            .try_fold(&self.root, |value, key| value.get(*key))
    }

    /// Whether a `web_hook` is configured under `selfservice.flows.<point>` (any method).
    pub fn has_web_hook(&self, point: &[&str]) -> bool {
        let mut path = vec!["selfservice", "flows"];
        path.extend_from_slice(point);
        self.at(&path).is_some_and(contains_web_hook)
    }

    pub fn has_migrate_hook(&self) -> bool {
        let Some(hook) = self.at(&[
            "selfservice",
            "methods",
            "password",
            "config",
            "migrate_hook",
        ]) else {
            return false;
        };
        hook.get("enabled").and_then(Value::as_bool) == Some(true)
            && hook
                .get("config")
                .and_then(|config| config.get("url"))
                .and_then(Value::as_str)
                .is_some_and(|url| !url.trim().is_empty())
    }
}

fn contains_web_hook(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => {
            map.get("hook").and_then(Value::as_str) == Some("web_hook")
                || map.values().any(contains_web_hook)
        }
        Value::Sequence(items) => items.iter().any(contains_web_hook),
        _ => false,
    }
}

pub(super) fn lines(triggers: &[&str], hooks: Option<&KratosHooks>) -> Vec<CheckLine> {
    if triggers.is_empty() {
        return vec![CheckLine::pass(
            "triggers",
            "the pool has no Lambda triggers".to_owned(),
        )];
    }
    triggers
        .iter()
        .map(|trigger| {
            let name = format!("trigger {trigger}");
            let verdict = trigger_verdict(trigger);
            let where_ = match verdict {
                TriggerVerdict::NoEquivalent(nearest) => {
                    return CheckLine::warn(
                        &name,
                        format!("no Kratos web hook equivalent; nearest: {nearest}"),
                    );
                }
                TriggerVerdict::MigrateHook => {
                    "selfservice.methods.password.config.migrate_hook".to_owned()
                }
                TriggerVerdict::WebHook(points) => points
                    .iter()
                    .map(|point| format!("selfservice.flows.{}", point.join(".")))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let Some(hooks) = hooks else {
                return CheckLine::fail(
                    &name,
                    format!("not run: pass --kratos-yml FILE (looks for a web_hook in {where_})"),
                );
            };
            let found = match verdict {
                TriggerVerdict::MigrateHook => hooks.has_migrate_hook(),
                TriggerVerdict::WebHook(points) => {
                    points.iter().any(|point| hooks.has_web_hook(point))
                }
                TriggerVerdict::NoEquivalent(_) => false,
            };
            if found {
                CheckLine::pass(&name, format!("hook in {where_}"))
            } else {
                CheckLine::fail(&name, format!("no hook in {where_}"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const YML: &str = r#"
selfservice:
  methods:
    password:
      config:
        migrate_hook:
          enabled: true
          config: {url: "http://bridge/hook", method: POST}
  flows:
    login:
      after:
        password:
          hooks:
            - hook: web_hook
              config: {url: "http://app/after-login", method: POST}
    registration:
      after:
        hooks:
          - hook: session
"#;

    #[test]
    fn triggers_pass_with_their_hook_fail_without_and_warn_without_equivalent() {
        let hooks = KratosHooks::parse(YML).unwrap();
        let lines = lines(
            &[
                "PreSignUp",
                "PostAuthentication",
                "UserMigration",
                "CustomMessage",
            ],
            Some(&hooks),
        );
        let statuses: Vec<_> = lines
            .iter()
            .map(|line| (line.check.as_str(), line.status))
            .collect();
        use super::super::CheckStatus::*;
        assert_eq!(
            statuses,
            [
                ("trigger PreSignUp", Fail),
                ("trigger PostAuthentication", Pass),
                ("trigger UserMigration", Pass),
                ("trigger CustomMessage", Warn),
            ]
        );
        let without = super::lines(&["PostAuthentication"], None);
        assert_eq!(without[0].status, Fail);
        assert_eq!(super::lines(&[], None)[0].status, Pass);
    }

    #[test]
    fn a_disabled_migrate_hook_does_not_count() {
        let hooks = KratosHooks::parse(
            "selfservice: {methods: {password: {config: {migrate_hook: {enabled: false, config: {url: x}}}}}}",
        )
        .unwrap();
        assert!(!hooks.has_migrate_hook());
        assert!(KratosHooks::parse("a: [").is_err());
    }
}

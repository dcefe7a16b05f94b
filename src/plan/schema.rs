//! From the pool's attributes to Kratos traits: which attribute goes to which trait path
//! (the `[import.traits]` the plan proposes) and the identity schema that accepts what the
//! import writes there.
//!
//! The import copies every attribute as the string Cognito lists (`import/mapping.rs`), so a
//! Number or Boolean attribute is a string trait here too, with a pattern or enum that holds
//! Cognito's spelling; a number's bounds are named in the description, not enforced.

use serde_json::{Map, Value, json};

use crate::cognito::{AttributeKind, PoolAttribute, PoolDescription};

/// Attributes the import handles elsewhere: `sub` is the link back (metadata, external id),
/// the `*_verified` flags become verifiable addresses, `identities` is Cognito's own record
/// of federated sign-ins.
const HANDLED_ELSEWHERE: [&str; 4] = [
    "sub",
    "email_verified",
    "phone_number_verified",
    "identities",
];

/// Standard attributes with a nested trait path, as in the example configuration.
const NESTED: [(&str, &str); 4] = [
    ("given_name", "name.first"),
    ("family_name", "name.last"),
    ("middle_name", "name.middle"),
    ("name", "name.formatted"),
];

/// Cognito's spelling of a number attribute's value (the import copies it as a string).
pub const NUMBER_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// One attribute and what the plan does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributePlan {
    pub attribute: PoolAttribute,
    /// The trait path, or why there is none.
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Trait(String),
    Skipped(&'static str),
}

/// How people sign in, from `UsernameAttributes` and `AliasAttributes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// Attributes that become password identifiers in Kratos.
    pub identifiers: Vec<String>,
    /// The pool signs in with a username only; the plan fell back to e-mail (if any).
    pub username_only: bool,
}

impl SignIn {
    pub fn of(pool: &PoolDescription) -> Self {
        let mut identifiers: Vec<String> = Vec::new();
        for name in pool
            .username_attributes
            .iter()
            .chain(&pool.alias_attributes)
        {
            if !identifiers.contains(name) {
                identifiers.push(name.clone());
            }
        }
        let username_only = identifiers.is_empty();
        if username_only && pool.attributes.iter().any(|a| a.name == "email") {
            identifiers.push("email".to_owned());
        }
        Self {
            identifiers,
            username_only,
        }
    }
}

/// Every attribute of the pool with its trait path or the reason it has none.
pub fn attribute_plans(pool: &PoolDescription) -> Vec<AttributePlan> {
    let standard: Vec<&str> = pool
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .filter(|name| !name.contains(':'))
        .collect();
    pool.attributes
        .iter()
        .map(|attribute| {
            let name = attribute.name.as_str();
            let target = if HANDLED_ELSEWHERE.contains(&name) {
                Target::Skipped(match name {
                    "sub" => "the identity's link back to Cognito (metadata_admin.cognito.sub)",
                    "identities" => "Cognito's record of federated sign-ins",
                    _ => "becomes the verified state of the address",
                })
            } else if attribute.developer_only || name.starts_with("dev:") {
                Target::Skipped("developer-only: apps cannot read it, Kratos traits are theirs")
            } else if let Some((_, path)) = NESTED.iter().find(|(from, _)| *from == name) {
                Target::Trait((*path).to_owned())
            } else if let Some(custom) = name.strip_prefix("custom:") {
                let key = custom.replace('.', "_");
                let collides = standard.contains(&key.as_str()) || key == "name" || key == "groups";
                Target::Trait(if collides {
                    format!("custom_{key}")
                } else {
                    key
                })
            } else {
                Target::Trait(name.replace('.', "_"))
            };
            AttributePlan {
                attribute: attribute.clone(),
                target,
            }
        })
        .collect()
}

fn bound(value: Option<&String>) -> Option<u64> {
    value.and_then(|v| v.trim().parse().ok())
}

/// The JSON Schema of one trait.
fn property(attribute: &PoolAttribute, sign_in: &SignIn) -> Value {
    let mut property = Map::new();
    property.insert("title".into(), json!(attribute.name));
    match attribute.kind {
        AttributeKind::String => {
            property.insert("type".into(), json!("string"));
            if let Some(min) = bound(attribute.min_length.as_ref()) {
                property.insert("minLength".into(), json!(min));
            }
            if let Some(max) = bound(attribute.max_length.as_ref()) {
                property.insert("maxLength".into(), json!(max));
            }
        }
        AttributeKind::Number => {
            property.insert("type".into(), json!("string"));
            property.insert("pattern".into(), json!(NUMBER_PATTERN));
            let range = match (&attribute.min_value, &attribute.max_value) {
                (None, None) => String::new(),
                (min, max) => format!(
                    "; Cognito's bounds: {} to {}",
                    min.as_deref().unwrap_or("-"),
                    max.as_deref().unwrap_or("-")
                ),
            };
            property.insert(
                "description".into(),
                json!(format!(
                    "A Cognito Number, copied as its decimal string{range}"
                )),
            );
        }
        AttributeKind::Boolean => {
            property.insert("type".into(), json!("string"));
            property.insert("enum".into(), json!(["true", "false"]));
            property.insert(
                "description".into(),
                json!("A Cognito Boolean, copied as \"true\" or \"false\""),
            );
        }
        AttributeKind::DateTime => {
            property.insert("type".into(), json!("string"));
            property.insert(
                "description".into(),
                json!("A Cognito DateTime, copied as the string Cognito lists"),
            );
        }
    }
    let name = attribute.name.as_str();
    if name == "email" {
        property.insert("format".into(), json!("email"));
    }
    let identifier = sign_in.identifiers.iter().any(|id| id == name);
    let mut kratos = Map::new();
    if identifier {
        kratos.insert(
            "credentials".into(),
            json!({"password": {"identifier": true}}),
        );
    }
    if name == "email" {
        // The import writes the e-mail as verifiable and recovery address whenever there is one.
        kratos.insert("verification".into(), json!({"via": "email"}));
        kratos.insert("recovery".into(), json!({"via": "email"}));
    }
    if !kratos.is_empty() {
        property.insert("ory.sh/kratos".into(), Value::Object(kratos));
    }
    Value::Object(property)
}

/// Puts `property` at `path` inside the `traits` object schema, marking it required there
/// (and its parents required) when the attribute is.
fn place(traits: &mut Map<String, Value>, path: &[&str], property: Value, required: bool) {
    let (first, rest) = path.split_first().expect("a trait path has a segment");
    if required {
        let list = traits
            .entry("required")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("required is a list");
        if !list.iter().any(|known| known == first) {
            list.push(json!(first));
        }
    }
    let properties = traits
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("properties is an object");
    if rest.is_empty() {
        properties.insert((*first).to_owned(), property);
        return;
    }
    let child = properties.entry((*first).to_owned()).or_insert_with(
        || json!({"type": "object", "properties": {}, "additionalProperties": false}),
    );
    place(
        child.as_object_mut().expect("a nested trait is an object"),
        rest,
        property,
        required,
    );
}

/// The Kratos identity schema for `pool`'s attributes as `plans` maps them.
pub fn identity_schema(pool: &PoolDescription, plans: &[AttributePlan], sign_in: &SignIn) -> Value {
    let mut traits = Map::new();
    traits.insert("type".into(), json!("object"));
    traits.insert("properties".into(), json!({}));
    for plan in plans {
        let Target::Trait(path) = &plan.target else {
            continue;
        };
        let segments: Vec<&str> = path.split('.').collect();
        place(
            &mut traits,
            &segments,
            property(&plan.attribute, sign_in),
            plan.attribute.required,
        );
    }
    traits.insert("additionalProperties".into(), json!(false));
    json!({
        "$id": format!("https://schemas.example.com/cognito-bridge/{}.schema.json", pool.id),
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": format!("Person migrated from Cognito user pool {}", pool.id),
        "type": "object",
        "properties": {"traits": Value::Object(traits)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(name: &str) -> PoolAttribute {
        PoolAttribute::new(name, AttributeKind::String)
    }

    fn pool(attributes: Vec<PoolAttribute>, username: &[&str], alias: &[&str]) -> PoolDescription {
        PoolDescription {
            id: "eu-west-1_test".to_owned(),
            attributes,
            username_attributes: username.iter().map(|s| s.to_string()).collect(),
            alias_attributes: alias.iter().map(|s| s.to_string()).collect(),
            ..PoolDescription::default()
        }
    }

    fn targets(pool: &PoolDescription) -> Vec<(String, Target)> {
        attribute_plans(pool)
            .into_iter()
            .map(|plan| (plan.attribute.name, plan.target))
            .collect()
    }

    #[test]
    fn standard_custom_and_handled_attributes_get_their_paths() {
        let pool = pool(
            vec![
                string("sub"),
                string("email"),
                PoolAttribute::new("email_verified", AttributeKind::Boolean),
                string("given_name"),
                string("name"),
                string("custom:tenant"),
                string("custom:email"),
                string("dev:custom:secret"),
            ],
            &["email"],
            &[],
        );
        let trait_of = |path: &str| Target::Trait(path.to_owned());
        let found = targets(&pool);
        assert!(matches!(found[0].1, Target::Skipped(_)), "sub");
        assert_eq!(found[1].1, trait_of("email"));
        assert!(matches!(found[2].1, Target::Skipped(_)), "email_verified");
        assert_eq!(found[3].1, trait_of("name.first"));
        assert_eq!(found[4].1, trait_of("name.formatted"));
        assert_eq!(found[5].1, trait_of("tenant"));
        assert_eq!(found[6].1, trait_of("custom_email"), "no clash with email");
        assert!(matches!(found[7].1, Target::Skipped(_)), "developer-only");
    }

    #[test]
    fn identifiers_come_from_username_and_alias_attributes() {
        let attributes = vec![string("email"), string("phone_number")];
        let sign_in = SignIn::of(&pool(
            attributes.clone(),
            &["email"],
            &["phone_number", "email"],
        ));
        assert_eq!(sign_in.identifiers, ["email", "phone_number"]);
        assert!(!sign_in.username_only);
        let sign_in = SignIn::of(&pool(attributes, &[], &[]));
        assert_eq!(sign_in.identifiers, ["email"]);
        assert!(sign_in.username_only);
    }

    #[test]
    fn schema_types_constraints_required_and_extensions() {
        let mut email = string("email");
        email.required = true;
        email.max_length = Some("2048".to_owned());
        email.min_length = Some("0".to_owned());
        let mut phone = string("phone_number");
        phone.min_length = Some("x".to_owned());
        let mut age = PoolAttribute::new("custom:age", AttributeKind::Number);
        age.min_value = Some("0".to_owned());
        age.max_value = Some("150".to_owned());
        let mut first = string("given_name");
        first.required = true;
        let pool = pool(
            vec![
                email,
                phone,
                age,
                first,
                PoolAttribute::new("custom:vip", AttributeKind::Boolean),
            ],
            &[],
            &["email", "phone_number"],
        );
        let sign_in = SignIn::of(&pool);
        let schema = identity_schema(&pool, &attribute_plans(&pool), &sign_in);
        let traits = &schema["properties"]["traits"];
        let email = &traits["properties"]["email"];
        assert_eq!(email["format"], "email");
        assert_eq!(email["maxLength"], 2048);
        assert_eq!(email["minLength"], 0);
        assert_eq!(
            email["ory.sh/kratos"]["credentials"]["password"]["identifier"],
            true
        );
        assert_eq!(email["ory.sh/kratos"]["recovery"]["via"], "email");
        let phone = &traits["properties"]["phone_number"];
        assert_eq!(
            phone["ory.sh/kratos"]["credentials"]["password"]["identifier"],
            true
        );
        assert!(phone["ory.sh/kratos"].get("recovery").is_none());
        assert!(
            phone.get("minLength").is_none(),
            "an unreadable bound is left out"
        );
        assert_eq!(traits["properties"]["age"]["pattern"], NUMBER_PATTERN);
        assert_eq!(
            traits["properties"]["vip"]["enum"],
            json!(["true", "false"])
        );
        assert_eq!(traits["properties"]["name"]["required"], json!(["first"]));
        assert_eq!(traits["required"], json!(["email", "name"]));
        assert_eq!(traits["additionalProperties"], false);

        let validator = jsonschema::validator_for(&schema).unwrap();
        let good = json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "age": "42", "vip": "true"}});
        assert!(validator.is_valid(&good));
        for bad in [
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "age": "old"}}),
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "vip": "yes"}}),
            json!({"traits": {"email": "a@example.com"}}),
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "other": "x"}}),
        ] {
            assert!(!validator.is_valid(&bad), "{bad}");
        }
    }
}

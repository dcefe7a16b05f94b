//! From the pool's attributes and groups to Kratos traits: which attribute goes to which trait
//! path and type (the `[import.traits]` and `[import.trait_types]` the plan proposes) and the
//! identity schema that accepts what the import writes there.
//!
//! Cognito lists every value as a string; the import converts a trait to its declared type
//! (`import/mapping.rs`), so a Number is a JSON integer here, with Cognito's bounds as
//! `minimum`/`maximum`, and a Boolean a JSON boolean. The pool's groups, when it has any, are
//! the `groups` trait (an array of names).
//!
//! Over 400 lines: about half of it is the tests of the schema below the code.

use serde_json::{Map, Value, json};

use crate::cognito::{AttributeKind, PoolAttribute, PoolDescription};
use crate::config::TraitType;

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

/// The trait the pool's groups go to (`import.groups_trait`); a custom attribute named
/// `groups` becomes `custom_groups`.
pub const GROUPS_TRAIT: &str = "groups";

/// The JSON type of the trait for an attribute of `kind`. Cognito's Number holds whole
/// numbers (`updated_at` is seconds since the epoch; custom numbers read like `"12"`), a
/// Boolean `true` or `false`; a DateTime stays the string Cognito lists.
pub fn trait_type(kind: AttributeKind) -> TraitType {
    match kind {
        AttributeKind::Number => TraitType::Integer,
        AttributeKind::Boolean => TraitType::Boolean,
        AttributeKind::String | AttributeKind::DateTime => TraitType::String,
    }
}

/// One attribute and what the plan does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributePlan {
    pub attribute: PoolAttribute,
    /// The trait path, or why there is none.
    pub target: Target,
}

impl AttributePlan {
    /// The JSON type the import converts the value to.
    pub fn trait_type(&self) -> TraitType {
        trait_type(self.attribute.kind)
    }
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
                let collides =
                    standard.contains(&key.as_str()) || key == "name" || key == GROUPS_TRAIT;
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

/// A Number's bound as a JSON number: Cognito gives it as a decimal string.
fn number_bound(value: Option<&String>) -> Option<Value> {
    let value = value?.trim();
    value.parse::<i64>().map(Value::from).ok().or_else(|| {
        value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
    })
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
            property.insert("type".into(), json!(TraitType::Integer.as_str()));
            if let Some(min) = number_bound(attribute.min_value.as_ref()) {
                property.insert("minimum".into(), min);
            }
            if let Some(max) = number_bound(attribute.max_value.as_ref()) {
                property.insert("maximum".into(), max);
            }
            property.insert(
                "description".into(),
                json!("A Cognito Number: the import converts it to an integer"),
            );
        }
        AttributeKind::Boolean => {
            property.insert("type".into(), json!(TraitType::Boolean.as_str()));
            property.insert(
                "description".into(),
                json!("A Cognito Boolean: the import converts it to true or false"),
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
    if !pool.groups.is_empty() {
        place(
            &mut traits,
            &[GROUPS_TRAIT],
            json!({
                "title": "Cognito groups",
                "description": "The names of the user's Cognito groups (import.groups_trait)",
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": true,
            }),
            false,
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
        let age = &traits["properties"]["age"];
        assert_eq!(age["type"], "integer");
        assert_eq!(age["minimum"], 0);
        assert_eq!(age["maximum"], 150);
        assert_eq!(traits["properties"]["vip"]["type"], "boolean");
        assert!(
            traits["properties"].get("groups").is_none(),
            "no groups, no groups trait"
        );
        assert_eq!(traits["properties"]["name"]["required"], json!(["first"]));
        assert_eq!(traits["required"], json!(["email", "name"]));
        assert_eq!(traits["additionalProperties"], false);

        let validator = jsonschema::validator_for(&schema).unwrap();
        let good = json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "age": 42, "vip": true}});
        assert!(validator.is_valid(&good));
        for bad in [
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "age": "42"}}),
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "age": 151}}),
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "age": -1}}),
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "age": 4.5}}),
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "vip": "true"}}),
            json!({"traits": {"email": "a@example.com"}}),
            json!({"traits": {"email": "a@example.com", "name": {"first": "A"}, "other": "x"}}),
        ] {
            assert!(!validator.is_valid(&bad), "{bad}");
        }
    }

    #[test]
    fn types_bounds_and_the_groups_trait() {
        assert_eq!(trait_type(AttributeKind::Number), TraitType::Integer);
        assert_eq!(trait_type(AttributeKind::Boolean), TraitType::Boolean);
        assert_eq!(trait_type(AttributeKind::DateTime), TraitType::String);
        assert_eq!(trait_type(AttributeKind::String), TraitType::String);
        assert_eq!(number_bound(Some(&" -5 ".to_owned())), Some(json!(-5)));
        assert_eq!(number_bound(Some(&"2.5".to_owned())), Some(json!(2.5)));
        assert_eq!(number_bound(Some(&"many".to_owned())), None);
        assert_eq!(number_bound(None), None);

        let mut updated = PoolAttribute::new("updated_at", AttributeKind::Number);
        updated.min_value = Some("0".to_owned());
        let mut pool = pool(
            vec![
                string("email"),
                updated,
                PoolAttribute::new("custom:groups", AttributeKind::String),
            ],
            &["email"],
            &[],
        );
        pool.groups = vec![crate::cognito::PoolGroup {
            name: "admins".to_owned(),
            description: None,
            precedence: Some(1),
            role_arn: None,
        }];
        let plans = attribute_plans(&pool);
        assert_eq!(plans[2].target, Target::Trait("custom_groups".to_owned()));
        let schema = identity_schema(&pool, &plans, &SignIn::of(&pool));
        let traits = &schema["properties"]["traits"]["properties"];
        assert_eq!(traits["updated_at"]["type"], "integer");
        assert_eq!(traits["updated_at"]["minimum"], 0);
        assert!(traits["updated_at"].get("maximum").is_none());
        let groups = &traits["groups"];
        assert_eq!(groups["type"], "array");
        assert_eq!(groups["items"]["type"], "string");
        assert!(
            groups.get("ory.sh/kratos").is_none(),
            "groups are no identifier"
        );
        let required = &schema["properties"]["traits"]["required"];
        assert!(required.is_null(), "{required}");
        let validator = jsonschema::validator_for(&schema).unwrap();
        for good in [
            json!({"traits": {"email": "a@example.com", "groups": ["admins", "beta"], "updated_at": 1700000000}}),
            json!({"traits": {"email": "a@example.com", "groups": []}}),
        ] {
            assert!(validator.is_valid(&good), "{good}");
        }
        for bad in [
            json!({"traits": {"email": "a@example.com", "groups": "admins"}}),
            json!({"traits": {"email": "a@example.com", "groups": ["a", "a"]}}),
            json!({"traits": {"email": "a@example.com", "updated_at": "1700000000"}}),
        ] {
            assert!(!validator.is_valid(&bad), "{bad}");
        }
    }
}

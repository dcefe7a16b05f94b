//! One `PATCH /admin/identities` body, serialised once, and Kratos's per-item answers to it.

use serde::Deserialize;

use super::{ErrorBody, KratosError};

/// What Kratos did with one identity of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    Created {
        identity_id: String,
    },
    /// An identity with this external id (or another unique value) exists already.
    Conflict,
    Failed {
        status: Option<u16>,
        message: String,
    },
}

/// A `PATCH /admin/identities` body, serialised once (its size decides the batch split).
#[derive(Debug, Clone)]
pub struct BatchBody {
    body: Vec<u8>,
    patch_ids: Vec<String>,
}

impl Default for BatchBody {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBody {
    const OPEN: &'static [u8] = br#"{"identities":["#;
    const CLOSE: &'static [u8] = b"]}";

    pub fn new() -> Self {
        Self {
            body: Self::OPEN.to_vec(),
            patch_ids: Vec::new(),
        }
    }

    /// The body's size if `create` (an already serialised create body) were added.
    pub fn size_with(&self, create: &[u8]) -> usize {
        // `,{"patch_id":"<36>","create":…}` plus the closing brackets.
        self.body.len() + create.len() + 64 + Self::CLOSE.len()
    }

    pub fn push(&mut self, create: &[u8]) {
        let patch_id = uuid_v4();
        if !self.patch_ids.is_empty() {
            self.body.push(b',');
        }
        self.body.extend_from_slice(br#"{"patch_id":""#);
        self.body.extend_from_slice(patch_id.as_bytes());
        self.body.extend_from_slice(br#"","create":"#);
        self.body.extend_from_slice(create);
        self.body.push(b'}');
        self.patch_ids.push(patch_id);
    }

    pub fn len(&self) -> usize {
        self.patch_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patch_ids.is_empty()
    }

    /// The finished body (the closing brackets are added on the way out).
    pub fn finish(mut self) -> Self {
        self.body.extend_from_slice(Self::CLOSE);
        self
    }

    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// Kratos's per-item answers, matched by `patch_id` (falling back to position).
    pub(super) fn results_from(
        &self,
        answer: BatchAnswer,
        path: &str,
    ) -> Result<Vec<ItemResult>, KratosError> {
        if answer.identities.len() != self.patch_ids.len() {
            return Err(KratosError::Malformed {
                path: path.to_owned(),
                reason: format!(
                    "{} results for {} identities",
                    answer.identities.len(),
                    self.patch_ids.len()
                ),
            });
        }
        let mut results = vec![None; self.patch_ids.len()];
        for (position, item) in answer.identities.into_iter().enumerate() {
            let index = item
                .patch_id
                .as_deref()
                .and_then(|id| self.patch_ids.iter().position(|sent| sent == id))
                .unwrap_or(position);
            let result = match (item.action.as_deref(), item.identity, item.error) {
                (Some("create"), Some(identity_id), _) => ItemResult::Created { identity_id },
                (_, _, Some(error)) if error.code == Some(409) => ItemResult::Conflict,
                (_, _, error) => ItemResult::Failed {
                    status: error.as_ref().and_then(|error| error.code),
                    message: error.map(ErrorBody::text).unwrap_or_else(|| {
                        "Kratos reported neither an identity nor an error".into()
                    }),
                },
            };
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|result| {
                result.ok_or_else(|| KratosError::Malformed {
                    path: path.to_owned(),
                    reason: "two results for one patch_id".to_owned(),
                })
            })
            .collect()
    }
}
#[derive(Deserialize)]
pub(super) struct BatchAnswer {
    #[serde(default)]
    identities: Vec<ItemAnswer>,
}

#[derive(Deserialize)]
struct ItemAnswer {
    action: Option<String>,
    identity: Option<String>,
    patch_id: Option<String>,
    error: Option<ErrorBody>,
}

/// A random UUID v4 in its text form (Kratos's `patch_id` is `format: uuid`).
pub(super) fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn batch_bodies_are_json_with_a_patch_id_per_item() {
        let mut batch = BatchBody::new();
        batch.push(br#"{"schema_id":"default","traits":{}}"#);
        batch.push(br#"{"schema_id":"default","traits":{"a":1}}"#);
        let batch = batch.finish();
        let body: Value = serde_json::from_slice(batch.bytes()).unwrap();
        let items = body["identities"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1]["create"]["traits"]["a"], 1);
        let id = items[0]["patch_id"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(batch.size_with(b"{}") > batch.bytes().len());
    }

    #[test]
    fn per_item_answers_are_matched_by_patch_id() {
        let mut batch = BatchBody::new();
        batch.push(b"{}");
        batch.push(b"{}");
        batch.push(b"{}");
        let ids = batch.patch_ids.clone();
        let answer: BatchAnswer = serde_json::from_value(serde_json::json!({"identities": [
            {"action": "error", "patch_id": ids[2], "error": {"code": 400, "message": "bad traits", "reason": "email missing"}},
            {"action": "create", "patch_id": ids[0], "identity": "id-0"},
            {"action": "error", "patch_id": ids[1], "error": {"code": 409, "message": "exists"}},
        ]}))
        .unwrap();
        let results = batch.results_from(answer, "/admin/identities").unwrap();
        assert_eq!(
            results,
            [
                ItemResult::Created {
                    identity_id: "id-0".into()
                },
                ItemResult::Conflict,
                ItemResult::Failed {
                    status: Some(400),
                    message: "bad traits: email missing".into()
                },
            ]
        );
    }
}

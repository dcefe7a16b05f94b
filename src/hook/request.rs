//! The hook's request body: Kratos's default `{identifier, password}` and our extended body,
//! and the rule that finds the client's address in the headers it forwards.
//! Just over 400 lines: the table-driven tests of both (below the code) are about 170 of them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::domain::Password;

/// A parsed password-migration request. The password is only reachable through
/// [`HookRequest::password`], which hands out the zeroising [`Password`].
pub struct HookRequest {
    /// As the user typed it, not normalised.
    identifier: String,
    password: Password,
    identity_id: Option<String>,
    external_id: Option<String>,
    /// The login request's address headers as the body forwarded them: lower-cased name,
    /// values in order (`client_ip`, when sent, counts as an `X-Forwarded-For` value).
    client_headers: BTreeMap<String, Vec<String>>,
    user_agent: Option<String>,
}

/// Most header values kept from a body (a forwarded chain longer than this is cut from the
/// left, the end the client controls).
const MAX_HEADER_VALUES: usize = 64;
const FORWARDED_FOR: &str = "x-forwarded-for";

/// Why a body was refused. Messages name fields, never echo values.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HookBodyError {
    #[error("the request body is not valid JSON")]
    NotJson,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error(
        "the request body must be a JSON object whose `identifier` and `password` are strings \
         (optional `identity_id`, `external_id`, `client_ip`, `user_agent`: strings or null; \
         `client_headers`: an object of strings or string lists)"
    )]
    WrongShape,
}

#[derive(Deserialize)]
struct RawBody {
    identifier: Option<String>,
    password: Option<Zeroizing<String>>,
    identity_id: Option<String>,
    external_id: Option<String>,
    client_ip: Option<String>,
    client_headers: Option<BTreeMap<String, HeaderValues>>,
    user_agent: Option<String>,
    /// Kratos's own `identity` object, for bodies that pass `ctx.identity` through.
    identity: Option<RawIdentity>,
}

/// A header as Go's `http.Header` holds it (a list), or a single string.
#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderValues {
    One(Option<String>),
    Many(Vec<Option<String>>),
}

impl HeaderValues {
    fn into_values(self) -> Vec<String> {
        match self {
            HeaderValues::One(value) => value.into_iter().collect(),
            HeaderValues::Many(values) => values.into_iter().flatten().collect(),
        }
    }
}

#[derive(Deserialize)]
struct RawIdentity {
    id: Option<String>,
    external_id: Option<String>,
}

impl HookRequest {
    /// Parse a body. Unknown fields are ignored; error messages never contain input values.
    pub fn from_json(body: &[u8]) -> Result<Self, HookBodyError> {
        // serde would read a struct from an array too; the contract is an object.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => HookBodyError::WrongShape,
                    Err(_) => HookBodyError::NotJson,
                },
            );
        }
        let raw: RawBody =
            serde_json::from_slice(body).map_err(|error| match error.classify() {
                serde_json::error::Category::Data => HookBodyError::WrongShape,
                _ => HookBodyError::NotJson,
            })?;
        let identifier = raw
            .identifier
            .ok_or(HookBodyError::MissingField("identifier"))?;
        let password = raw
            .password
            .ok_or(HookBodyError::MissingField("password"))?;
        let (nested_id, nested_external_id) = raw
            .identity
            .map(|identity| (identity.id, identity.external_id))
            .unwrap_or_default();
        let mut client_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, values) in raw.client_headers.unwrap_or_default() {
            client_headers
                .entry(name.trim().to_ascii_lowercase())
                .or_default()
                .extend(values.into_values());
        }
        if let Some(address) = non_empty(raw.client_ip) {
            client_headers
                .entry(FORWARDED_FOR.to_owned())
                .or_default()
                .push(address);
        }
        for values in client_headers.values_mut() {
            if values.len() > MAX_HEADER_VALUES {
                values.drain(..values.len() - MAX_HEADER_VALUES);
            }
        }
        Ok(Self {
            identifier,
            password: Password::new(password),
            identity_id: non_empty(raw.identity_id.or(nested_id)),
            external_id: non_empty(raw.external_id.or(nested_external_id)),
            client_headers,
            user_agent: non_empty(raw.user_agent),
        })
    }

    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    pub fn password(&self) -> &Password {
        &self.password
    }

    pub fn identity_id(&self) -> Option<&str> {
        self.identity_id.as_deref()
    }

    pub fn external_id(&self) -> Option<&str> {
        self.external_id.as_deref()
    }

    /// The client's address by `rule`, when the forwarded headers give a usable one.
    pub fn client_ip(&self, rule: &ClientIpRule) -> Option<IpAddr> {
        rule.client_ip(&self.client_headers)
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
}

/// How the client's address is found in the login request's headers (`hooks.trusted_proxies`,
/// `hooks.client_ip_header`). The client controls everything left of the first proxy it
/// reaches, so `X-Forwarded-For` is read from the right: the address that the nearest proxy
/// not in `trusted_proxies` reported. A header like `True-Client-Ip` counts only when
/// `client_ip_header` names it (set by a proxy that overwrites what the client sent).
#[derive(Debug, Clone, Default)]
pub struct ClientIpRule {
    trusted_proxies: Vec<IpNet>,
    /// Lower-cased.
    header: Option<String>,
}

impl ClientIpRule {
    pub fn new(trusted_proxies: Vec<IpNet>, header: Option<&str>) -> Self {
        Self {
            trusted_proxies,
            header: header
                .map(|name| name.trim().to_ascii_lowercase())
                .filter(|name| !name.is_empty()),
        }
    }

    /// The client of a request made to us directly (the capture endpoint): the peer itself,
    /// unless it is a trusted proxy; then what the proxies report, read as for the hook.
    /// `headers` holds the values of [`ClientIpRule::header_names`], lower-cased names.
    pub fn direct_client(
        &self,
        peer: Option<IpAddr>,
        headers: &BTreeMap<String, Vec<String>>,
    ) -> Option<IpAddr> {
        match peer.map(|ip| ip.to_canonical()) {
            Some(peer) if !self.trusted(peer) => Some(peer),
            peer => self.client_ip(headers).or(peer),
        }
    }

    /// The headers [`ClientIpRule::direct_client`] reads.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(FORWARDED_FOR).chain(self.header.as_deref())
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    fn client_ip(&self, headers: &BTreeMap<String, Vec<String>>) -> Option<IpAddr> {
        if let Some(name) = &self.header
            && let Some(address) = headers
                .get(name)
                .and_then(|values| values.last())
                .and_then(|value| parse_address(value))
        {
            return Some(address);
        }
        // Every value of every X-Forwarded-For header, in order: one chain.
        let chain: Vec<&str> = headers
            .get(FORWARDED_FOR)?
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        let mut leftmost = None;
        for entry in chain.iter().rev() {
            // Left of an entry we cannot read, nothing can be trusted.
            let address = parse_address(entry)?;
            if !self.trusted(address) {
                return Some(address);
            }
            leftmost = Some(address);
        }
        // Only trusted proxies: the earliest of them is as near to the client as we know.
        leftmost
    }
}

/// An address as proxies write it: `203.0.113.9`, `198.51.100.7:5555`, `[2001:db8::1]:443`;
/// IPv4-mapped IPv6 as IPv4. Anything else is `None`.
fn parse_address(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|address| address.ip()))
        .map(|ip| ip.to_canonical())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let rule = rule(&["10.0.0.0/8"], None);
        let forwarded: BTreeMap<String, Vec<String>> = [(
            FORWARDED_FOR.to_owned(),
            vec!["198.51.100.1, 203.0.113.9".to_owned()],
        )]
        .into_iter()
        .collect();
        let ip = |raw: &str| raw.parse::<IpAddr>().unwrap();
        // An untrusted peer is the client, whatever it claims to forward.
        assert_eq!(
            rule.direct_client(Some(ip("192.0.2.5")), &forwarded),
            Some(ip("192.0.2.5"))
        );
        // A trusted proxy: the nearest address it reports that is not trusted.
        assert_eq!(
            rule.direct_client(Some(ip("10.1.2.3")), &forwarded),
            Some(ip("203.0.113.9"))
        );
        // A trusted proxy that forwards nothing: the proxy is all we know.
        assert_eq!(
            rule.direct_client(Some(ip("10.1.2.3")), &BTreeMap::new()),
            Some(ip("10.1.2.3"))
        );
        assert_eq!(rule.header_names().collect::<Vec<_>>(), [FORWARDED_FOR]);
    }

    #[test]
    fn kratos_default_body_parses() {
        let request =
            HookRequest::from_json(br#"{"identifier":"Alice@Example.com","password":"pw"}"#)
                .unwrap();
        assert_eq!(request.identifier(), "Alice@Example.com");
        assert_eq!(request.password().expose(), "pw");
        assert_eq!(request.identity_id(), None);
    }

    #[test]
    fn extended_body_and_unknown_fields_parse() {
        let request = HookRequest::from_json(
            br#"{"identifier":"a","password":"p","identity_id":"i-1","external_id":"sub-1",
                 "client_ip":"203.0.113.9","user_agent":"UA","flow":{"id":"f"},"extra":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(request.identity_id(), Some("i-1"));
        assert_eq!(request.external_id(), Some("sub-1"));
        assert_eq!(
            request.client_ip(&ClientIpRule::default()),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(request.user_agent(), Some("UA"));
    }

    fn forwarded(body: serde_json::Value, rule: &ClientIpRule) -> Option<String> {
        HookRequest::from_json(body.to_string().as_bytes())
            .unwrap()
            .client_ip(rule)
            .map(|ip| ip.to_string())
    }

    fn rule(trusted: &[&str], header: Option<&str>) -> ClientIpRule {
        ClientIpRule::new(
            trusted
                .iter()
                .map(|net| {
                    net.parse()
                        .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
                })
                .collect::<Result<_, _>>()
                .unwrap(),
            header,
        )
    }

    #[test]
    fn client_addresses_are_parsed_or_ignored() {
        let ip = |raw: &str| {
            forwarded(
                serde_json::json!({"identifier": "a", "password": "p", "client_ip": raw}),
                &ClientIpRule::default(),
            )
        };
        assert_eq!(ip("203.0.113.9").as_deref(), Some("203.0.113.9"));
        assert_eq!(ip("[2001:db8::1]:443").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("198.51.100.7:5555").as_deref(), Some("198.51.100.7"));
        assert_eq!(ip("::ffff:192.0.2.1").as_deref(), Some("192.0.2.1"));
        assert_eq!(ip("localhost"), None);
        assert_eq!(ip(""), None);
    }

    /// The review's scenario: the client writes its own `X-Forwarded-For` entries (a fresh
    /// address per guess) and `True-Client-Ip`; only what the proxies appended counts.
    #[test]
    fn spoofed_forwarded_chains_give_the_address_the_proxy_saw() {
        let body = |headers: serde_json::Value| serde_json::json!({"identifier": "a", "password": "p", "client_headers": headers});
        let spoofed = body(serde_json::json!({
            "X-Forwarded-For": ["1.2.3.4, 5.6.7.8, 203.0.113.9"],
            "True-Client-Ip": ["9.9.9.9"],
        }));
        // No trusted proxy: the nearest proxy's report, the rightmost entry.
        assert_eq!(
            forwarded(spoofed.clone(), &ClientIpRule::default()).as_deref(),
            Some("203.0.113.9")
        );
        // True-Client-Ip only when configured.
        assert_eq!(
            forwarded(spoofed.clone(), &rule(&[], Some("True-Client-Ip"))).as_deref(),
            Some("9.9.9.9")
        );
        // Several proxies: skip the trusted ones from the right.
        let chain = body(serde_json::json!({
            "x-forwarded-for": ["6.6.6.6, 198.51.100.20", "10.0.0.5"],
        }));
        assert_eq!(
            forwarded(chain.clone(), &rule(&["10.0.0.0/8"], None)).as_deref(),
            Some("198.51.100.20")
        );
        assert_eq!(
            forwarded(chain.clone(), &rule(&["10.0.0.0/8", "198.51.100.20"], None)).as_deref(),
            Some("6.6.6.6")
        );
        assert_eq!(
            forwarded(chain, &rule(&[], None)).as_deref(),
            Some("10.0.0.5"),
            "values of several headers are one chain"
        );
        // Garbage to the right of the client stops the walk; all trusted gives the earliest.
        let garbage = body(serde_json::json!({"X-Forwarded-For": "203.0.113.9, unknown"}));
        assert_eq!(forwarded(garbage, &ClientIpRule::default()), None);
        let proxies = body(serde_json::json!({"X-Forwarded-For": ["10.0.0.7, 10.0.0.5"]}));
        assert_eq!(
            forwarded(proxies, &rule(&["10.0.0.0/8"], None)).as_deref(),
            Some("10.0.0.7")
        );
        // IPv6 entries, with and without ports, behind a v6 proxy range.
        let v6 = body(serde_json::json!({
            "X-Forwarded-For": ["[2001:db8:aa::1]:51000, 2001:db8:ffff::2"],
        }));
        assert_eq!(
            forwarded(v6, &rule(&["2001:db8:ffff::/48"], None)).as_deref(),
            Some("2001:db8:aa::1")
        );
        // A configured header that is absent: back to the chain.
        let plain = body(serde_json::json!({"X-Forwarded-For": "203.0.113.10"}));
        assert_eq!(
            forwarded(plain, &rule(&[], Some("CF-Connecting-IP"))).as_deref(),
            Some("203.0.113.10")
        );
    }

    #[test]
    fn nested_identity_is_accepted_and_nulls_are_absent() {
        let request = HookRequest::from_json(
            br#"{"identifier":"a","password":"p","identity":{"id":"i-2","external_id":null,"traits":{}},"client_ip":null,"user_agent":""}"#,
        )
        .unwrap();
        assert_eq!(request.identity_id(), Some("i-2"));
        assert_eq!(request.external_id(), None);
        assert_eq!(request.client_ip(&ClientIpRule::default()), None);
        assert_eq!(request.user_agent(), None);
    }

    #[test]
    fn refusals_name_the_problem_without_echoing_values() {
        let cases: [(&[u8], HookBodyError); 9] = [
            (b"not json", HookBodyError::NotJson),
            (b"{\"identifier\":\"a\",", HookBodyError::NotJson),
            (b"", HookBodyError::NotJson),
            (
                br#"{"password":"p"}"#,
                HookBodyError::MissingField("identifier"),
            ),
            (
                br#"{"identifier":"a"}"#,
                HookBodyError::MissingField("password"),
            ),
            (
                br#"{"identifier":"a","password":12345678}"#,
                HookBodyError::WrongShape,
            ),
            (br#"["identifier","password"]"#, HookBodyError::WrongShape),
            (
                br#"["alice","pw",null,null,null,null,null]"#,
                HookBodyError::WrongShape,
            ),
            (b"  [1, 2", HookBodyError::NotJson),
        ];
        for (body, expected) in cases {
            let error = HookRequest::from_json(body).err().expect("must be refused");
            assert_eq!(error, expected, "body {:?}", String::from_utf8_lossy(body));
        }
        let error = HookRequest::from_json(br#"{"identifier":"a","password":["secret-value"]}"#)
            .err()
            .unwrap();
        assert!(!error.to_string().contains("secret-value"));
    }
}

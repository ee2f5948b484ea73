//! The web view's rules, apart from any socket: which requests are let in (token, Host,
//! Origin), what an action's JSON body means, and which supervisor request it becomes.
//! Pure functions, unit-tested below; [`super`] is the shell that serves them.

use crate::core::NodeId;
use raft_wire::levers::MAX_DELAY_US;
use raft_wire::supervisor::SupervisorRequest;
use raft_wire::{SPEED_MILLI_MAX, SPEED_MILLI_MIN};
use serde::Deserialize;

/// Bytes of randomness in the access token (hex-encoded in the URL): guessing 128 bits is
/// out of reach for another local user.
pub const TOKEN_BYTES: usize = 16;
/// Largest action body read: an action is a few dozen bytes of JSON; anything bigger is
/// not one of ours, and is refused before it is read.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest key or value the client panel sends: a teaching panel, not a bulk loader.
pub const MAX_PANEL_BYTES: usize = 1024;

/// A fresh token from the OS's random source, as hex.
pub fn new_token() -> std::io::Result<String> {
    let mut b = [0u8; TOKEN_BYTES];
    raft_wire::auth::random_bytes(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The token kept in `<dir>/web.token`, checked: exactly the hex of [`TOKEN_BYTES`] bytes
/// (a trailing newline allowed).
pub fn parse_token_file(text: &str) -> Result<String, String> {
    let t = text.strip_suffix('\n').unwrap_or(text);
    if t.len() == 2 * TOKEN_BYTES && t.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(t.to_string())
    } else {
        Err(format!("it must hold {} lowercase hex digits; delete it and a new token is made", 2 * TOKEN_BYTES))
    }
}

/// Compares a presented token with the real one in time that does not depend on where
/// they first differ (so timing cannot guess it byte by byte).
pub fn token_matches(presented: &str, token: &str) -> bool {
    let (a, b) = (presented.as_bytes(), token.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The value of `name` in a URL's query string (`/events?token=ab`), not percent-decoded
/// (tokens are hex).
pub fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// The path of a URL, without its query.
pub fn path_of(url: &str) -> &str {
    url.split_once('?').map_or(url, |(p, _)| p)
}

/// The Host values the server answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosts {
    /// Bound to loopback: the address it is bound to and, on 127.0.0.1 or ::1, `localhost`
    /// too. Anything else (a DNS name rebound to 127.0.0.1 by a web page) is refused.
    Only(Vec<String>),
    /// Bound to another or a wildcard address (`--bind 0.0.0.0`): the page is reached by
    /// whatever name or address others use for this machine, which the server cannot
    /// know, so any Host is answered. The token still guards everything but the page,
    /// and an Origin must still be the Host the request names.
    Any,
}

impl Hosts {
    pub fn allows(&self, host: &str) -> bool {
        match self {
            Hosts::Only(hosts) => hosts.iter().any(|h| h == host),
            Hosts::Any => true,
        }
    }
}

/// The Host values a server bound to `bind` (IPv6 in brackets) on `port` answers to.
pub fn allowed_hosts(bind: &str, port: u16) -> Hosts {
    let loopback = bind == "localhost"
        || bind
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Hosts::Any;
    }
    let mut hosts = vec![format!("{bind}:{port}")];
    if bind == "127.0.0.1" || bind == "localhost" || bind == "::1" || bind == "[::1]" {
        hosts.extend(["127.0.0.1", "localhost", "[::1]"].iter().map(|h| format!("{h}:{port}")));
    }
    hosts.sort();
    hosts.dedup();
    Hosts::Only(hosts)
}

/// Why a request is refused, with its HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into() }
    }
}

/// The checks every request but the page itself passes: a Host we serve, an Origin (when
/// the browser sends one) of that same host, and the token (header `X-Raft-Token` or the
/// `token` query parameter). A page of another origin can send a request but never
/// carries our Origin, and another local user's page does not have the token.
pub fn check_request(
    host: Option<&str>,
    origin: Option<&str>,
    header_token: Option<&str>,
    url: &str,
    token: &str,
    hosts: &Hosts,
) -> Result<(), Refusal> {
    let host = host.ok_or_else(|| Refusal::new(400, "no Host header"))?;
    if let Hosts::Only(only) = hosts {
        if !hosts.allows(host) {
            let expected = only.join(", ");
            return Err(Refusal::new(403, format!("Host {host} is not this server (expected one of {expected})")));
        }
    }
    if let Some(origin) = origin {
        if origin != format!("http://{host}") {
            return Err(Refusal::new(403, format!("requests from origin {origin} are refused")));
        }
    }
    let presented = header_token.or_else(|| query_param(url, "token"));
    match presented {
        None => Err(Refusal::new(401, "this needs the access token that `raft-supervisor web` printed")),
        Some(t) if !token_matches(t, token) => Err(Refusal::new(401, "wrong access token")),
        Some(_) => Ok(()),
    }
}

/// What the page asks for, as JSON: `{"action": "kill", "node": 3}`,
/// `{"action": "partition", "groups": [[1, 2], [3, 4, 5]]}`, `{"action": "speed",
/// "milli": 250}`, `{"action": "delay", "ms": 300}`, `{"action": "set", "key": "k",
/// "value": "v"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    Kill {
        node: NodeId,
    },
    Start {
        node: NodeId,
    },
    Restart {
        node: NodeId,
    },
    Pause {
        node: NodeId,
    },
    Resume {
        node: NodeId,
    },
    Transfer {
        node: NodeId,
    },
    Partition {
        groups: Vec<Vec<NodeId>>,
    },
    Heal,
    /// Tick speed in thousandths (1000: as configured).
    Speed {
        milli: u32,
    },
    /// Outgoing delay of every node's peer messages, in milliseconds (0: off).
    Delay {
        ms: u64,
    },
    Set {
        key: String,
        value: String,
    },
    Get {
        key: String,
    },
}

/// What an action turns into: a supervisor request, or a client call to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Supervisor(SupervisorRequest),
    Set { key: String, value: String },
    Get { key: String },
}

/// Parses and checks an action body; every way it can be wrong has its own message.
pub fn parse_action(body: &[u8], ids: &[NodeId]) -> Result<Plan, Refusal> {
    let action: Action =
        serde_json::from_slice(body).map_err(|e| Refusal::new(400, format!("not an action this page sends: {e}")))?;
    let node = |id: NodeId| {
        if ids.contains(&id) {
            Ok(id)
        } else {
            Err(Refusal::new(400, format!("there is no node {id}")))
        }
    };
    let panel = |what: &str, s: &str| {
        if s.is_empty() && what == "key" {
            Err(Refusal::new(400, "give a key"))
        } else if s.len() > MAX_PANEL_BYTES {
            Err(Refusal::new(400, format!("the {what} is longer than {MAX_PANEL_BYTES} bytes")))
        } else {
            Ok(s.to_string())
        }
    };
    let req = match action {
        Action::Kill { node: n } => SupervisorRequest::Kill(node(n)?),
        Action::Start { node: n } => SupervisorRequest::Start(node(n)?),
        Action::Restart { node: n } => SupervisorRequest::Restart(node(n)?),
        Action::Pause { node: n } => SupervisorRequest::Pause(node(n)?),
        Action::Resume { node: n } => SupervisorRequest::Resume(node(n)?),
        Action::Transfer { node: n } => SupervisorRequest::Transfer(node(n)?),
        Action::Partition { groups } => {
            let groups: Vec<Vec<NodeId>> = groups.into_iter().filter(|g| !g.is_empty()).collect();
            let everyone = groups.len() == 1 && ids.iter().all(|id| groups[0].contains(id));
            if groups.is_empty() || everyone {
                SupervisorRequest::Heal
            } else {
                SupervisorRequest::Partition(
                    crate::cli::normalize_groups(&groups, ids).map_err(|e| Refusal::new(400, e))?,
                )
            }
        }
        Action::Heal => SupervisorRequest::Heal,
        Action::Speed { milli } => {
            if !(SPEED_MILLI_MIN..=SPEED_MILLI_MAX).contains(&milli) {
                return Err(Refusal::new(
                    400,
                    format!("a speed is {SPEED_MILLI_MIN}..={SPEED_MILLI_MAX} thousandths (1000: as configured)"),
                ));
            }
            SupervisorRequest::Speed(milli)
        }
        Action::Delay { ms } => {
            let us = ms.saturating_mul(1000);
            if us > MAX_DELAY_US {
                return Err(Refusal::new(400, format!("a delay is at most {} ms", MAX_DELAY_US / 1000)));
            }
            SupervisorRequest::Levers { nodes: vec![], delay: Some((us, 0)), loss_ppm: None }
        }
        Action::Set { key, value } => {
            return Ok(Plan::Set { key: panel("key", &key)?, value: panel("value", &value)? })
        }
        Action::Get { key } => return Ok(Plan::Get { key: panel("key", &key)? }),
    };
    Ok(Plan::Supervisor(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [NodeId; 5] = [1, 2, 3, 4, 5];

    fn plan(body: &str) -> Result<Plan, Refusal> {
        parse_action(body.as_bytes(), &IDS)
    }

    fn hosts() -> Hosts {
        allowed_hosts("127.0.0.1", 8080)
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches("abcd", "abcd"));
        assert!(!token_matches("abce", "abcd"));
        assert!(!token_matches("abc", "abcd"));
        assert!(!token_matches("", "abcd"));
        let t = new_token().unwrap();
        assert_eq!(t.len(), 2 * TOKEN_BYTES);
        assert_ne!(t, new_token().unwrap(), "two tokens are never the same");
    }

    #[test]
    fn token_files_are_checked() {
        let t = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_token_file(t), Ok(t.to_string()));
        assert_eq!(parse_token_file(&format!("{t}\n")), Ok(t.to_string()));
        for bad in
            ["", "abc", &t[1..], &format!("{t}0"), &t.replace('a', "A"), &t.replace('a', "g"), &format!("{t}\n\n")]
        {
            assert!(parse_token_file(bad).unwrap_err().contains("hex digits"), "{bad:?}");
        }
    }

    #[test]
    fn query_and_path() {
        assert_eq!(query_param("/events?token=ab&x=1", "token"), Some("ab"));
        assert_eq!(query_param("/events?x=1&token=ab", "token"), Some("ab"));
        assert_eq!(query_param("/events?tokenx=ab", "token"), None);
        assert_eq!(query_param("/events", "token"), None);
        assert_eq!(path_of("/api/action?token=ab"), "/api/action");
        assert_eq!(path_of("/"), "/");
    }

    #[test]
    fn requests_need_host_origin_and_token() {
        let h = hosts();
        let ok = |host, origin, header, url| check_request(host, origin, header, url, "t0k", &h);
        assert_eq!(ok(Some("127.0.0.1:8080"), None, Some("t0k"), "/api/action"), Ok(()));
        assert_eq!(ok(Some("localhost:8080"), Some("http://localhost:8080"), None, "/events?token=t0k"), Ok(()));
        // No token, a wrong one, one of another length.
        assert_eq!(ok(Some("127.0.0.1:8080"), None, None, "/api/action").unwrap_err().status, 401);
        assert_eq!(ok(Some("127.0.0.1:8080"), None, Some("t0x"), "/api/action").unwrap_err().status, 401);
        assert_eq!(ok(Some("127.0.0.1:8080"), None, None, "/e?token=t0k0").unwrap_err().status, 401);
        // Another site's page, even with the token (say it leaked into a referrer).
        let e = ok(Some("127.0.0.1:8080"), Some("http://evil.example"), Some("t0k"), "/api/action").unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.message.contains("evil.example"), "{}", e.message);
        // A rebound DNS name, another port, no Host at all.
        assert_eq!(ok(Some("evil.example:8080"), None, Some("t0k"), "/").unwrap_err().status, 403);
        assert_eq!(ok(Some("127.0.0.1:9090"), None, Some("t0k"), "/").unwrap_err().status, 403);
        assert_eq!(ok(None, None, Some("t0k"), "/").unwrap_err().status, 400);
        // An Origin of another port of the same machine is another origin.
        assert_eq!(
            ok(Some("127.0.0.1:8080"), Some("http://127.0.0.1:9090"), Some("t0k"), "/").unwrap_err().status,
            403
        );
    }

    #[test]
    fn loopback_answers_its_own_names_and_other_binds_any_host() {
        assert!(hosts().allows("localhost:8080") && hosts().allows("[::1]:8080"));
        assert!(!hosts().allows("10.0.0.5:8080"));
        assert_eq!(allowed_hosts("127.0.0.2", 80), Hosts::Only(vec!["127.0.0.2:80".to_string()]));
        assert_eq!(allowed_hosts("[::1]", 80), allowed_hosts("127.0.0.1", 80), "the same loopback names");
        // Others reach a wildcard or LAN bind by names the server cannot know.
        for bind in ["0.0.0.0", "[::]", "10.0.0.5"] {
            assert_eq!(allowed_hosts(bind, 8080), Hosts::Any, "{bind}");
        }
        let any = Hosts::Any;
        let ok = |host, origin, header| check_request(host, origin, header, "/api/action", "t0k", &any);
        assert_eq!(ok(Some("raft.lan:8080"), Some("http://raft.lan:8080"), Some("t0k")), Ok(()));
        assert_eq!(ok(Some("192.168.1.9:8080"), None, Some("t0k")), Ok(()));
        // The token and the Origin still guard it.
        assert_eq!(ok(Some("raft.lan:8080"), None, None).unwrap_err().status, 401);
        assert_eq!(ok(Some("raft.lan:8080"), None, Some("nope")).unwrap_err().status, 401);
        assert_eq!(ok(Some("raft.lan:8080"), Some("http://evil.example"), Some("t0k")).unwrap_err().status, 403);
        assert_eq!(ok(None, None, Some("t0k")).unwrap_err().status, 400);
    }

    #[test]
    fn actions_become_requests() {
        assert_eq!(plan(r#"{"action":"kill","node":3}"#), Ok(Plan::Supervisor(SupervisorRequest::Kill(3))));
        assert_eq!(plan(r#"{"action":"resume","node":1}"#), Ok(Plan::Supervisor(SupervisorRequest::Resume(1))));
        assert_eq!(
            plan(r#"{"action":"partition","groups":[[1,2]]}"#),
            Ok(Plan::Supervisor(SupervisorRequest::Partition(vec![vec![1, 2], vec![3, 4, 5]])))
        );
        // Dragging every node back together is a heal.
        assert_eq!(
            plan(r#"{"action":"partition","groups":[[],[1,2,3,4,5]]}"#),
            Ok(Plan::Supervisor(SupervisorRequest::Heal))
        );
        assert_eq!(plan(r#"{"action":"partition","groups":[]}"#), Ok(Plan::Supervisor(SupervisorRequest::Heal)));
        assert_eq!(plan(r#"{"action":"speed","milli":250}"#), Ok(Plan::Supervisor(SupervisorRequest::Speed(250))));
        assert_eq!(
            plan(r#"{"action":"delay","ms":300}"#),
            Ok(Plan::Supervisor(SupervisorRequest::Levers {
                nodes: vec![],
                delay: Some((300_000, 0)),
                loss_ppm: None
            }))
        );
        assert_eq!(
            plan(r#"{"action":"set","key":"k","value":"v"}"#),
            Ok(Plan::Set { key: "k".into(), value: "v".into() })
        );
        assert_eq!(plan(r#"{"action":"get","key":"k"}"#), Ok(Plan::Get { key: "k".into() }));
    }

    #[test]
    fn bad_actions_are_refused_with_a_reason() {
        let bad = |body: &str, needle: &str| {
            let e = plan(body).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        };
        bad("", "not an action");
        bad("{", "not an action");
        bad(r#"{"action":"explode"}"#, "not an action");
        bad(r#"{"action":"kill"}"#, "not an action");
        bad(r#"{"action":"kill","node":"three"}"#, "not an action");
        bad(r#"{"action":"kill","node":3,"extra":1}"#, "not an action");
        bad(r#"{"action":"kill","node":9}"#, "no node 9");
        bad(r#"{"action":"partition","groups":[[1,9]]}"#, "9");
        bad(r#"{"action":"partition","groups":[[1,2],[2,3]]}"#, "2");
        bad(r#"{"action":"speed","milli":0}"#, "thousandths");
        bad(r#"{"action":"speed","milli":100000}"#, "thousandths");
        bad(r#"{"action":"delay","ms":99999999999}"#, "at most");
        bad(r#"{"action":"set","key":"","value":"v"}"#, "give a key");
        bad(&format!(r#"{{"action":"set","key":"k","value":"{}"}}"#, "x".repeat(MAX_PANEL_BYTES + 1)), "longer");
    }
}

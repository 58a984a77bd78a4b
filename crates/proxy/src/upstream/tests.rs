use super::*;
use crate::config::Secret;

/// A route of the generic profile to `upstream`, for tests.
pub(crate) fn route(upstream: &str, auth: Option<UpstreamAuth>) -> Route {
    Route {
        name: "app".into(),
        path_prefix: String::new(),
        idp: "generic".into(),
        mode: scimtrail_rules::Mode::Enforce,
        target: scimtrail_rules::Target::default(),
        shape_learning: 100,
        upstream: upstream.parse().unwrap(),
        timeout: Duration::from_secs(5),
        upstream_auth: auth,
        client_identity: None,
        idp_token: None,
        allow_anonymous_idp: false,
        webhook: None,
        read_back: false,
        redaction: scimtrail_scim::redact::Redaction::passwords_only(),
        pacing: None,
        reconcile_every: None,
    }
}

fn idp_parts() -> http::request::Parts {
    let (parts, ()) = Request::builder()
        .method("PATCH")
        .uri("/Users/1")
        .header("authorization", "Bearer idp-token")
        .header("cookie", "session=idp")
        .header("proxy-authorization", "Basic eA==")
        .header("content-encoding", "gzip")
        .header("accept-encoding", "gzip, zstd")
        .header("host", "proxy.example")
        .header("connection", "close, x-private")
        .header("x-private", "1")
        .header("x-request-id", "r1")
        .body(())
        .unwrap()
        .into_parts();
    parts
}

fn outbound<'a>(path: &'a str, on_behalf: OnBehalf<'a>) -> Outbound<'a> {
    Outbound {
        method: "GET",
        path,
        query: Some("attributes=id"),
        body: Bytes::new(),
        content_type: None,
        if_match: None,
        on_behalf,
    }
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (input, output) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), output);
    }
}

#[test]
fn the_idp_credentials_never_go_beside_the_routes_own() {
    let parts = idp_parts();
    let header_auth = UpstreamAuth::Header {
        name: "x-api-key".into(),
        value: Secret::new("app-key"),
    };
    for auth in [
        Some(header_auth),
        Some(UpstreamAuth::Bearer(Secret::new("app-token"))),
        None,
    ] {
        let route = route("http://127.0.0.1:9/scim/v2", auth.clone());
        let forward = OnBehalf::Forward {
            parts: &parts,
            peer: "192.0.2.1".parse().unwrap(),
            scheme: "https",
        };
        let made = OnBehalf::Proxy {
            idp_headers: &parts.headers,
        };
        for on_behalf in [forward, made] {
            let request = build(&route, &outbound("/Users/1", on_behalf)).unwrap();
            let headers = request.headers();
            let authorization = headers.get_all(AUTHORIZATION).iter().collect::<Vec<_>>();
            match &auth {
                Some(UpstreamAuth::Header { .. }) => {
                    assert!(authorization.is_empty(), "{headers:?}");
                    assert_eq!(headers["x-api-key"], "app-key");
                }
                Some(_) => assert_eq!(authorization, ["Bearer app-token"], "{headers:?}"),
                None => assert_eq!(authorization, ["Bearer idp-token"], "{headers:?}"),
            }
            assert_eq!(
                headers.contains_key(COOKIE),
                auth.is_none() && headers.contains_key("x-request-id")
            );
            assert!(!headers.contains_key("proxy-authorization"));
            assert_eq!(request.uri(), "http://127.0.0.1:9/scim/v2/Users/1?attributes=id");
        }
    }
}

#[test]
fn a_forwarded_request_keeps_end_to_end_headers_only() {
    let parts = idp_parts();
    let route = route("http://127.0.0.1:9", None);
    let on_behalf = OnBehalf::Forward {
        parts: &parts,
        peer: "192.0.2.1".parse().unwrap(),
        scheme: "https",
    };
    let request = build(&route, &outbound("/Users/1", on_behalf)).unwrap();
    let headers = request.headers();
    for gone in ["connection", "x-private", "content-encoding", "host"] {
        assert!(!headers.contains_key(gone), "{gone}");
    }
    assert_eq!(headers[ACCEPT_ENCODING], content_coding::ACCEPTED);
    assert_eq!(headers["x-forwarded-for"], "192.0.2.1");
    assert_eq!(headers["x-forwarded-host"], "proxy.example");
    assert_eq!(headers["x-request-id"], "r1");
}

#[test]
fn nothing_is_built_that_would_leave_the_upstream() {
    let parts = idp_parts();
    let route = route("http://127.0.0.1:9/scim", None);
    for path in [
        "/Users/..",
        "/Users/%2e%2e/x",
        "//evil.example/x",
        "Users",
        "/a%2f..%2fb",
        "/Users/a\\b",
    ] {
        let on_behalf = OnBehalf::Proxy {
            idp_headers: &parts.headers,
        };
        assert!(build(&route, &outbound(path, on_behalf)).is_err(), "{path}");
    }
}

#[test]
fn a_location_is_followed_only_under_the_upstream() {
    let route = route("http://127.0.0.1:8180/scim/v2", None);
    for (location, followed) in [
        ("http://127.0.0.1:8180/scim/v2/Users/42", Some("/Users/42")),
        ("HTTP://127.0.0.1:8180/scim/v2/Users/42?x=1", Some("/Users/42")),
        ("/scim/v2/Users/42", Some("/Users/42")),
        ("http://127.0.0.1:8180@attacker.example:8180/scim/v2/Users/42", None),
        ("http://user@127.0.0.1:8180/scim/v2/Users/42", None),
        ("http://attacker.example:8180/scim/v2/Users/42", None),
        ("http://127.0.0.1:8181/scim/v2/Users/42", None),
        ("https://127.0.0.1:8180/scim/v2/Users/42", None),
        ("http://127.0.0.1:8180/scim/v20/Users/42", None),
        ("http://127.0.0.1:8180/scim/v2/../admin", None),
        ("http://127.0.0.1:8180/scim/v2/Users/%2e%2e", None),
        ("//attacker.example/scim/v2/Users/42", None),
        ("Users/42", None),
        ("not a uri", None),
    ] {
        assert_eq!(location_path(&route, location).ok().as_deref(), followed, "{location}");
    }
    let default_port = route_with_port();
    assert_eq!(
        location_path(&default_port, "https://app.example:443/Users/1").as_deref(),
        Ok("/Users/1")
    );
}

fn route_with_port() -> Route {
    route("https://app.example", None)
}

#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*, from what the
project already holds: the filter corpus (tests/fixtures/filters), the cases of the bundled
rule files (config/idps/*.toml: each IdP's real requests and answers), and a few raw HTTP
requests per route of the exchange target. The campaign (bench/fuzz) grows the corpus from
these; `cargo test` replays whatever is committed. Standard library only; run from anywhere.
"""

import gzip
import hashlib
import json
import pathlib
import struct
import tomllib
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
SEP = b"\xff"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
ENDPOINTS = ["/Users", "/Users/u1", "/Groups", "/Groups/g1", "/Bulk", "/.search", "/Users/.search",
             "/ServiceProviderConfig", "/Me"]


def write(target: str, data: bytes) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)


def rule_cases():
    for path in sorted((ROOT / "config" / "idps").glob("*.toml")):
        for case in tomllib.loads(path.read_text()).get("test", []):
            yield path.stem, case


def structured(case, profile=0, lacking=0, with_state=1) -> bytes:
    """A rule-file case as the `rules` and `findings` targets read their input; for `rules`,
    the selector also names the profile (its index among the bundled ones),
    the target (1: an application lacking everything) and whether the state is read."""
    method = METHODS.index(case["method"]) if case["method"] in METHODS else 0
    path = case["path"]
    endpoint = max((i for i, e in enumerate(ENDPOINTS) if path.startswith(e)),
                   key=lambda i: len(ENDPOINTS[i]), default=0)
    rest = path[len(ENDPOINTS[endpoint]):] if path.startswith(ENDPOINTS[endpoint]) else path
    status = case.get("response_status", 200) - 100
    fields = [
        bytes([method, endpoint, profile, lacking, with_state]),
        rest.encode(),
        case.get("query", "").encode(),
        case.get("body", "").encode(),
        struct.pack(">H", status),
        case.get("response_body", "").encode(),
        case.get("response_retry_after", "").encode(),
        case.get("state", "").encode(),
    ]
    return SEP.join(fields)


def http(method: str, path: str, body: bytes = b"", headers=()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: scimtrail.example"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append("content-type: application/scim+json")
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def journal_seeds():
    new = {"id": "01a24bf6-9ff0-73b9-83f4-a927b086a819", "received_at_ms": 1700000000000, "instance": "fuzz",
           "route": "okta", "idp": "okta", "method": "PATCH", "path": "/okta/Users/u1", "query": None,
           "resource_type": "Users", "resource_id": "u1", "user_name": "bjensen", "operation": "patch",
           "lifecycle": "deactivate", "request_headers": [["content-type", "application/scim+json"]],
           "request_body": '{"Operations":[{"op":"replace","path":"active","value":false}]}',
           "replay_of": None, "parent_id": None}
    done = {"id": new["id"], "duration_ms": 3, "forwarded_headers": [], "forwarded_body": None, "changes": [],
            "upstream_status": 200, "status": 200, "response_headers": [], "response_body": "{}",
            "outcome": "ok", "findings": [], "bulk_operations": None, "error": None, "resource_id": None,
            "user_name": None}
    writes = [{"Begin": new}, {"Finish": done}, {"Whole": [new, done]},
              {"Snapshot": {"route": "okta", "resource_type": "Users", "resource_id": "u1", "body": "{}",
                            "updated_at_ms": 1700000000000}},
              {"Shape": ["okta", "PATCH /Users/{id} active", 1700000000000]}]
    payloads = [json.dumps(w, separators=(",", ":")).encode() for w in writes]
    first = 7
    framed = b""
    for index, payload in enumerate(payloads):
        seq = struct.pack("<Q", first + index)
        framed += struct.pack("<I", len(payload)) + struct.pack("<I", zlib.crc32(seq + payload)) + seq + payload
    head = struct.pack("<Q", first)
    yield head + framed
    yield head + SEP.join(payloads)
    yield head + framed + b"\x00" * 32
    yield head + framed[:-5]


def main() -> None:
    filters = ROOT / "tests" / "fixtures" / "filters"
    for name in ["valid.txt", "invalid.txt"]:
        for line in (filters / name).read_text().splitlines():
            if line and not line.startswith("#"):
                write("filter", line.encode())
    for path in ["userName", "name.givenName", 'emails[type eq "work"].value', "members[value eq \"u1\"]",
                 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                 "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", "addresses[type eq \"work\"]",
                 "members", "meta.lastModified", "emails[type eq \"work\" and primary eq true].value"]:
        write("path", path.encode())

    requests = []
    # In the order scimtrail_rules::builtin_profiles gives them.
    profiles = ["okta", "entra", "onelogin", "jumpcloud", "google", "ping", "generic"]
    for idp, case in rule_cases():
        lacking = 1 if case.get("target") else 0
        write("rules", structured(case, profiles.index(idp), lacking))
        write("findings", structured(case))
        body = case.get("body", "")
        if not body:
            continue
        write("strict_json", body.encode())
        if "Operations" in body and "BulkRequest" in body:
            write("bulk", body.encode())
        elif "Operations" in body:
            write("patch", body.encode())
        query = f"?{case['query']}" if case.get("query") else ""
        requests.append((idp, case["method"], case["path"] + query, body.encode()))
    write("strict_json", b'{"active":false,"Active":true}')
    write("bulk", json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": 1,
                              "Operations": [
                                  {"method": "POST", "path": "/Users", "bulkId": "a",
                                   "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                            "userName": "bulk"}},
                                  {"method": "PATCH", "path": "/Groups/g1", "data": {
                                      "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                      "Operations": [{"op": "add", "path": "members",
                                                      "value": [{"value": "bulkId:a"}]}]}}]}).encode())

    prefixes = {"okta": "/okta", "entra": "/entra", "google": "/google", "jumpcloud": "/jumpcloud"}
    for idp, method, path, body in requests:
        prefix = prefixes.get(idp, "")
        headers = [("authorization", "Bearer fuzz-token")] if idp == "jumpcloud" else []
        write("exchange", http(method, prefix + path, body, headers))
    user = b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"zip","password":"p"}'
    write("exchange", http("POST", "/Users", gzip.compress(user), [("content-encoding", "gzip")]))
    write("exchange", http("GET", "/okta/Users?startIndex=1&count=100"))
    write("exchange", http("GET", "/okta//Users?filter=userName%20eq%20%22a%22"))
    write("exchange", http("GET", "/entra/Users/..;/admin"))
    write("exchange", http("OPTIONS", "/Users"))
    write("exchange", http("POST", "/google/Bulk", json.dumps({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "POST", "path": "/BULK", "bulkId": "x", "data": {}}]}).encode()))
    write("exchange", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
    write("exchange", b"P")

    for seed in journal_seeds():
        write("journal", seed)


if __name__ == "__main__":
    main()

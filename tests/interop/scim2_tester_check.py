#!/usr/bin/env python3
"""Run the third-party scim2-tester compliance suite against a SCIM server.

Usage:
    python tests/interop/scim2_tester_check.py http://127.0.0.1:PORT/scim/v2
        [--token TOKEN] [--include-tag TAG ...] [--exclude-tag TAG ...]
        [--resource-type NAME ...] [--known-exceptions FILE] [--timeout SECONDS]
        [--deadline SECONDS] [--scim-media-type] [--verbose] [--trace FILE]

The base URL is the SCIM service root (the URL under which /ServiceProviderConfig,
/Schemas, /ResourceTypes, /Users, ... live). Only loopback hosts are accepted
(127.0.0.0/8, ::1, localhost): no other address is ever contacted. The HTTP client
ignores proxy environment variables and never follows redirects.

Output: one line per check result (status, [resource type] title: reason), then
a closing line `N passed, M failed, K skipped`.

Exit code: 0 when no check failed (ERROR or CRITICAL), except those whose title is
listed in the known-exceptions file; 1 when a check failed; 2 on a usage or setup
error (bad URL, missing dependency, crash of the tester itself).

Known-exceptions file (default: scim2_tester_known_exceptions.txt next to this
script): one entry per line, `#` starts a comment. An entry is either a check
title (e.g. `random_url`), which excuses that check for every resource type, or
`ResourceType/title` (e.g. `Group/check_add_attribute`), which excuses it for one
resource type only. Every entry must be justified in README.md with RFC text.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
DEFAULT_EXCEPTIONS = HERE / "scim2_tester_known_exceptions.txt"

FAILED_STATUSES = {"ERROR", "CRITICAL"}
SKIPPED_STATUSES = {"SKIPPED"}
# SUCCESS, COMPLIANT, ACCEPTABLE and DEVIATION (a SHOULD deviation that stays
# within the specification) count as passed; the status name is printed as is.


def _fail_setup(message: str) -> NoReturn:
    print(f"scim2_tester_check: {message}", file=sys.stderr)
    sys.exit(2)


def check_loopback_url(base_url: str) -> str:
    """Refuse anything but an http(s) URL whose host resolves only to loopback."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        _fail_setup(f"base URL must be http:// or https://, got {base_url!r}")
    if parts.username or parts.password:
        _fail_setup("base URL must not carry credentials")
    if parts.query or parts.fragment:
        _fail_setup("base URL must not carry a query or a fragment")
    host = parts.hostname
    if not host:
        _fail_setup(f"base URL has no host: {base_url!r}")

    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host.lower() != "localhost":
            _fail_setup(f"only loopback hosts are allowed, got {host!r}")
        try:
            infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            _fail_setup(f"cannot resolve {host!r}: {exc}")
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]

    if not addresses or not all(addr.is_loopback for addr in addresses):
        _fail_setup(f"only loopback addresses are allowed, {host!r} is {addresses}")

    return base_url.rstrip("/")


def load_known_exceptions(path: Path) -> set[str]:
    if not path.exists():
        return set()
    entries = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            entries.add(line)
    return entries


def one_line(text: object) -> str:
    return " ".join(str(text).split()) if text is not None else ""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run scim2-tester against a loopback SCIM server.",
    )
    parser.add_argument(
        "base_url",
        help="SCIM service root, e.g. http://127.0.0.1:8080/scim/v2 (loopback only)",
    )
    parser.add_argument("--token", help="send 'Authorization: Bearer TOKEN'")
    parser.add_argument(
        "--include-tag",
        action="append",
        default=[],
        metavar="TAG",
        help="run only checks with one of these tags (repeatable), "
        "e.g. discovery, crud, crud:read, patch:add, misc",
    )
    parser.add_argument(
        "--exclude-tag",
        action="append",
        default=[],
        metavar="TAG",
        help="skip checks with any of these tags (repeatable)",
    )
    parser.add_argument(
        "--resource-type",
        action="append",
        default=[],
        metavar="NAME",
        help="only exercise these resource types (repeatable), e.g. User",
    )
    parser.add_argument(
        "--known-exceptions",
        type=Path,
        default=DEFAULT_EXCEPTIONS,
        metavar="FILE",
        help=f"allowlist of check titles (default: {DEFAULT_EXCEPTIONS.name})",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="per-request timeout in seconds"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=900.0,
        help="overall time budget in seconds; requests after it fail at once "
        "(default: 900)",
    )
    parser.add_argument(
        "--scim-media-type",
        action="store_true",
        help="send 'Accept: application/scim+json' and, on requests with a body, "
        "'Content-Type: application/scim+json' (scim2-client alone sends "
        "'Accept: */*' and 'Content-Type: application/json')",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="write every HTTP exchange (method, URL, status, headers, bodies) to FILE",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also print the debugging data of failed checks",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    base_url = check_loopback_url(args.base_url)
    known = load_known_exceptions(args.known_exceptions)

    try:
        import httpx2
        from scim2_client.engines.httpx2 import SyncSCIMClient
        from scim2_tester import check_server
    except ImportError as exc:
        _fail_setup(
            f"{exc}. Install the pinned requirements: "
            f"pip install -r {HERE / 'requirements.txt'}"
        )

    headers = {}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"

    event_hooks: dict[str, list] = {"request": [], "response": []}
    started = time.monotonic()

    def enforce_deadline(request: "httpx2.Request") -> None:
        if time.monotonic() - started > args.deadline:
            raise RuntimeError(
                f"deadline of {args.deadline:g}s exceeded, not sending "
                f"{request.method} {request.url}"
            )

    event_hooks["request"].append(enforce_deadline)
    if args.scim_media_type:
        headers["Accept"] = "application/scim+json"

        def set_content_type(request: "httpx2.Request") -> None:
            if request.content:
                request.headers["Content-Type"] = "application/scim+json"

        event_hooks["request"].append(set_content_type)

    trace = None
    if args.trace:
        trace = args.trace.open("w", encoding="utf-8")

        def log_response(response: "httpx2.Response") -> None:
            response.read()
            request = response.request
            body = request.content.decode("utf-8", "replace") if request.content else ""
            trace.write(f">>> {request.method} {request.url}\n")
            for name in ("accept", "content-type", "if-match", "if-none-match"):
                if name in request.headers:
                    trace.write(f">>> {name}: {request.headers[name]}\n")
            if body:
                trace.write(f">>> {body}\n")
            trace.write(f"<<< {response.status_code}\n")
            for name, value in response.headers.items():
                trace.write(f"<<< {name}: {value}\n")
            if response.content:
                trace.write(f"<<< {response.text}\n")
            trace.write("\n")

        event_hooks["response"].append(log_response)

    http = httpx2.Client(
        base_url=base_url,
        headers=headers,
        event_hooks=event_hooks,
        timeout=args.timeout,
        trust_env=False,  # never go through a proxy from the environment
        follow_redirects=False,  # never leave the given loopback URL
    )

    try:
        with http:
            client = SyncSCIMClient(http)
            results = check_server(
                client,
                raise_exceptions=False,
                include_tags=set(args.include_tag) or None,
                exclude_tags=set(args.exclude_tag) or None,
                resource_types=args.resource_type or None,
            )
    except Exception:  # a crash of the tester, not a check failure
        traceback.print_exc()
        _fail_setup("scim2-tester crashed before producing results")
    finally:
        if trace is not None:
            trace.close()

    passed = failed = skipped = excused = 0
    used_exceptions: set[str] = set()
    for result in results:
        status = result.status.name
        title = result.title or "<untitled>"
        rtype = result.resource_type
        label = f"[{rtype}] {title}" if rtype else title
        reason = one_line(result.reason)

        if status in FAILED_STATUSES:
            keys = [title] + ([f"{rtype}/{title}"] if rtype else [])
            matched = [key for key in keys if key in known]
            if matched:
                excused += 1
                used_exceptions.update(matched)
                shown = f"XFAIL({status})"
            else:
                failed += 1
                shown = status
        elif status in SKIPPED_STATUSES:
            skipped += 1
            shown = status
        else:
            passed += 1
            shown = status

        print(f"{shown:<12} {label}: {reason}" if reason else f"{shown:<12} {label}")
        if args.verbose and status in FAILED_STATUSES and result.data is not None:
            print(f"{'':<12}   data: {one_line(result.data)[:2000]}")

    for entry in sorted(known - used_exceptions):
        print(f"note: known exception {entry!r} did not fail in this run; consider removing it")
    if excused:
        print(f"{excused} failed check(s) excused by {args.known_exceptions.name} (not counted below)")
    if not results:
        print("note: scim2-tester produced no result")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())

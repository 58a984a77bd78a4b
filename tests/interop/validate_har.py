"""Validate HAR files against the HAR 1.2 schema (har-schema 2.0.0, vendored in
tests/fixtures/har-schema) with jsonschema, formats checked (absolute URLs, RFC 3339 dates).

usage: python validate_har.py FILE.har ...   prints OK or each error; exits 1 if any is invalid.
"""
import json
import pathlib
import sys

from jsonschema import Draft6Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "har-schema"


def validator():
    schemas = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")}
    registry = Registry().with_resources(
        (name, Resource.from_contents(schema, default_specification=DRAFT6)) for name, schema in schemas.items()
    )
    return Draft6Validator(schemas["har.json"], registry=registry, format_checker=FormatChecker())


def main(paths):
    check = validator()
    # The format checks this relies on: without them a relative URL or a date without a zone passes.
    for needed in ("uri", "date-time"):
        if needed not in check.format_checker.checkers:
            print(f"format {needed} is not checked: install rfc3987 and rfc3339-validator")
            return 1
    bad = 0
    for path in paths:
        errors = sorted(check.iter_errors(json.loads(pathlib.Path(path).read_text())), key=lambda e: list(e.path))
        for error in errors:
            print(f"INVALID {path}: /{'/'.join(map(str, error.path))}: {error.message[:200]}")
        if not errors:
            print(f"OK {path}")
        bad += bool(errors)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

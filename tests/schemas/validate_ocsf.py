#!/usr/bin/env python3
"""Checks events against the OCSF 1.1.0 JSON Schemas.

Usage: python3 validate_ocsf.py EVENTS.jsonl

EVENTS.jsonl holds one OCSF event a line. Each event is validated with `jsonschema` against
the schema `ocsf-json-schema` generates from the OCSF 1.1.0 export for the event's
`class_uid`, with the profiles the event declares in `metadata.profiles` (profile attributes
such as `device` and `actor` are only allowed when their profile is declared). On top of the
schema:

- `metadata.version` is 1.1.0, the version the schemas come from;
- `type_uid` is `class_uid * 100 + activity_id`;
- every declared profile applies to the class;
- no attribute is one OCSF 1.1.0 deprecates;
- wherever an enumerated attribute (`activity_id`, `severity_id`, `type_uid`, ...) and its
  sibling caption (`activity_name`, `severity`, `type_name`, ...) are both present, the
  caption is the one OCSF defines for the value; 99 (Other) leaves the caption to the source.

Every problem is printed with the event's index (its line among the non-empty ones, from 0)
and the JSON path; the exit status is 1 if there was any, else it prints
"<n> documents valid".
"""

import json
import sys

try:
    import jsonschema
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema, get_packaged_versions
except ImportError as err:
    sys.exit(
        f"cannot import the validator's dependencies ({err}); run this script with the "
        "virtualenv `cargo xtask bootstrap` creates (<target dir>/schema-tools/venv/bin/python3)"
    )

OCSF_VERSION = "1.1.0"
# The activity and status value every OCSF enum reserves for a source-specific one, whose
# caption the source supplies.
OTHER = 99


class Checker:
    """Validates events against one OCSF version, caching a validator per class and profiles."""

    def __init__(self, version):
        if version not in get_packaged_versions():
            sys.exit(f"ocsf-json-schema does not package OCSF {version}")
        self.export = get_ocsf_schema(version=version)
        self.schema = OcsfJsonSchemaEmbedded(self.export)
        self.validators = {}

    def validator(self, class_name, profiles):
        key = (class_name, tuple(sorted(profiles)))
        if key not in self.validators:
            schema = self.schema.get_class_schema(class_name, profiles=list(profiles))
            # The schema names its own draft (2020-12); checking it first means a generator
            # bug shows up as such rather than as a verdict on the events.
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self.validators[key] = cls(schema, format_checker=cls.FORMAT_CHECKER)
        return self.validators[key]

    def check(self, event, report):
        """Reports every problem of one event through report(path, message)."""
        if not isinstance(event, dict):
            report("$", f"is {json.dumps(event)[:80]}, not a JSON object")
            return
        metadata = event.get("metadata")
        version = metadata.get("version") if isinstance(metadata, dict) else None
        if version != OCSF_VERSION:
            report("$.metadata.version", f"is {json.dumps(version)}, not {OCSF_VERSION!r}")

        class_uid = event.get("class_uid")
        activity_id = event.get("activity_id")
        if isinstance(class_uid, int) and isinstance(activity_id, int):
            expected = class_uid * 100 + activity_id
            if event.get("type_uid") != expected:
                report(
                    "$.type_uid",
                    f"is {json.dumps(event.get('type_uid'))}, not class_uid * 100 + "
                    f"activity_id = {expected}",
                )
        try:
            class_name = self.schema.lookup_class_name_from_uid(class_uid)
        except (ValueError, TypeError):
            report("$.class_uid", f"{json.dumps(class_uid)} is not an OCSF {OCSF_VERSION} class")
            return
        class_def = self.export["classes"][class_name]

        profiles = metadata.get("profiles", []) if isinstance(metadata, dict) else []
        if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
            # The schema reports the type error; validate as if no profile were declared.
            profiles = []
        applicable = class_def.get("profiles", [])
        for profile in profiles:
            if profile not in applicable:
                report(
                    "$.metadata.profiles",
                    f"{profile!r} is not a profile of {class_def['caption']} "
                    f"({', '.join(applicable)})",
                )
        profiles = [p for p in profiles if p in applicable]

        validator = self.validator(class_name, profiles)
        for error in sorted(validator.iter_errors(event), key=lambda e: list(e.absolute_path)):
            report(error.json_path, message(error))
            # anyOf/oneOf failures say only "not valid under any of the given schemas"; the
            # branch errors say why.
            for sub in sorted(error.context or [], key=lambda e: list(e.absolute_path)):
                report(sub.json_path, f"  (alternative {list(sub.schema_path)[0]}) {message(sub)}")

        self.check_attributes(event, class_def["attributes"], "$", report)

    def check_attributes(self, value, attributes, path, report):
        """What the generated schema leaves out: deprecations, and enum captions matching their
        ids. Descends into objects and arrays of objects."""
        for name, attribute in attributes.items():
            if name not in value:
                continue
            child = value[name]
            child_path = f"{path}.{name}"
            deprecated = attribute.get("@deprecated")
            if deprecated:
                report(child_path, f"is deprecated since OCSF {deprecated.get('since')}: "
                       f"{deprecated.get('message')}")
            enum = attribute.get("enum")
            sibling = attribute.get("sibling")
            if enum and sibling and sibling in value and child != OTHER:
                caption = enum.get(str(child), {}).get("caption")
                if caption is not None and value[sibling] != caption:
                    report(
                        f"{path}.{sibling}",
                        f"is {json.dumps(value[sibling])}, but {name} {child} is "
                        f"{caption!r} in OCSF {OCSF_VERSION}",
                    )
            object_type = attribute.get("object_type")
            if attribute.get("type") != "object_t" or object_type not in self.export["objects"]:
                continue
            nested = self.export["objects"][object_type]["attributes"]
            items = child if isinstance(child, list) else [child]
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    item_path = f"{child_path}[{index}]" if isinstance(child, list) else child_path
                    self.check_attributes(item, nested, item_path, report)


def message(error):
    """The error's message, naming the attribute type instead of quoting its pattern: OCSF's IP
    address pattern alone is 1,500 characters."""
    if error.validator == "pattern":
        title = error.schema.get("title", "attribute")
        return f"{error.instance!r} is not a valid {title} (it does not match OCSF's pattern)"
    return error.message


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: validate_ocsf.py EVENTS.jsonl")
    path = sys.argv[1]
    try:
        with open(path, encoding="utf-8") as file:
            lines = [line for line in file if line.strip()]
    except OSError as err:
        sys.exit(f"cannot read {path}: {err}")
    if not lines:
        print(f"{path} holds no events")
        return 1

    checker = Checker(OCSF_VERSION)
    problems = 0
    for index, line in enumerate(lines):

        def report(where, message, index=index):
            nonlocal problems
            problems += 1
            print(f"document {index}: {where}: {message}")

        try:
            event = json.loads(line)
        except json.JSONDecodeError as err:
            report("$", f"is not JSON: {err}")
            continue
        checker.check(event, report)

    if problems:
        print(f"{problems} problem(s) in {len(lines)} documents (OCSF {OCSF_VERSION})")
        return 1
    print(f"OCSF {OCSF_VERSION}: {len(lines)} documents valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env node
// Checks documents against the Elastic Common Schema field definitions that Elastic publishes
// on npm (`@elastic/ecs`, its `EcsFlat` table, generated from ECS's own YAML).
//
// Usage: NODE_PATH=<dir holding @elastic/ecs> node validate_ecs.js DOCUMENTS.jsonl
//
// DOCUMENTS.jsonl holds one JSON document a line. Every problem is printed with the document's
// index (its line among the non-empty ones, from 0) and the dotted field name; the exit status
// is 1 if there was any, else the script prints "<n> documents valid".
//
// The rules, beyond "it parses":
// - every field is an ECS field, except those under the custom namespace `vigil` (ECS leaves
//   room for custom fields and asks that they not collide with its own);
// - each value has the JSON type the field's Elasticsearch type accepts, with dates in RFC 3339
//   and IPs valid IPv4/IPv6 text;
// - only fields ECS normalises to arrays hold arrays;
// - fields with `allowed_values` (event.kind, event.category, event.type, event.outcome ...)
//   or `expected_values` (host.os.type ...) hold only those;
// - every event.type is one ECS expects for one of the document's event.category values;
// - the fields ECS marks required are present, and ecs.version names the ECS release of the
//   definitions: a document claiming another release would be checked against the wrong one.

'use strict';

const fs = require('fs');
const net = require('net');

const CUSTOM_NAMESPACE = 'vigil';

let ecs;
try {
  ecs = require('@elastic/ecs');
} catch (err) {
  console.error(
    `cannot load @elastic/ecs (${err.message}); set NODE_PATH to the node_modules that ` +
      '`cargo xtask bootstrap` installs it into (<target dir>/schema-tools/ecs/node_modules)'
  );
  process.exit(2);
}
const { EcsFlat, EcsVersion } = ecs;
if (!EcsFlat || typeof EcsFlat !== 'object' || !EcsFlat['@timestamp']) {
  console.error('@elastic/ecs does not export the EcsFlat field table this script reads');
  process.exit(2);
}

// Every proper prefix of an ECS field name: a path that may hold an object of ECS fields.
const prefixes = new Set();
for (const name of Object.keys(EcsFlat)) {
  const parts = name.split('.');
  for (let i = 1; i < parts.length; i++) {
    prefixes.add(parts.slice(0, i).join('.'));
  }
}

const STRING_TYPES = new Set([
  'keyword',
  'constant_keyword',
  'wildcard',
  'text',
  'match_only_text',
]);
const INTEGER_RANGES = {
  byte: [-(2 ** 7), 2 ** 7 - 1],
  short: [-(2 ** 15), 2 ** 15 - 1],
  integer: [-(2 ** 31), 2 ** 31 - 1],
  long: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  unsigned_long: [0, Number.MAX_SAFE_INTEGER],
};
const FLOAT_TYPES = new Set(['float', 'half_float', 'double', 'scaled_float']);
const OBJECT_TYPES = new Set(['object', 'flattened', 'nested']);

// RFC 3339 date-time: full date, 'T' (or space, as RFC 3339 allows), time, optional fraction
// of any length, and a mandatory offset.
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describe(value) {
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isRfc3339(value) {
  const m = RFC3339.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  // 60 seconds is a leap second, which RFC 3339 allows.
  return (
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= days &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 60
  );
}

// Why a single value does not fit an ECS type, or null when it does.
function typeProblem(type, value) {
  if (STRING_TYPES.has(type)) {
    return typeof value === 'string'
      ? null
      : `a ${type} field holds text, not ${describe(value)}`;
  }
  if (type in INTEGER_RANGES) {
    const [min, max] = INTEGER_RANGES[type];
    if (!Number.isInteger(value)) {
      return `a ${type} field holds an integer, not ${describe(value)}`;
    }
    return value < min || value > max ? `${value} is out of range for ${type}` : null;
  }
  if (FLOAT_TYPES.has(type)) {
    return typeof value === 'number'
      ? null
      : `a ${type} field holds a number, not ${describe(value)}`;
  }
  switch (type) {
    case 'boolean':
      return typeof value === 'boolean'
        ? null
        : `a boolean field holds true or false, not ${describe(value)}`;
    case 'date':
      return typeof value === 'string' && isRfc3339(value)
        ? null
        : `a date field holds an RFC 3339 date-time, not ${describe(value)}`;
    case 'ip':
      return typeof value === 'string' && net.isIP(value) !== 0
        ? null
        : `an ip field holds an IPv4 or IPv6 address, not ${describe(value)}`;
    case 'geo_point':
      return isPlainObject(value) && typeof value.lat === 'number' && typeof value.lon === 'number'
        ? null
        : `a geo_point field holds {"lat": ..., "lon": ...}, not ${describe(value)}`;
    default:
      // Failing beats guessing: a type this script does not know is a check it cannot make.
      return `the validator does not know ECS type "${type}"`;
  }
}

// Checks one document, calling report(key, message) for every problem.
function checkDocument(doc, report) {
  if (!isPlainObject(doc)) {
    report('(document)', `is ${describe(doc)}, not a JSON object`);
    return;
  }
  const seen = new Map();

  function walk(path, value) {
    if (path === CUSTOM_NAMESPACE || path.startsWith(`${CUSTOM_NAMESPACE}.`)) return;
    if (seen.has(path)) {
      // `{"a.b": 1, "a": {"b": 2}}` is one field written twice; Elasticsearch keeps one value.
      report(path, 'appears more than once (dotted and nested spellings of the same field)');
      return;
    }
    const field = EcsFlat[path];
    if (field) {
      seen.set(path, value);
      checkField(path, field, value);
      return;
    }
    if (isPlainObject(value) && (path === '' || prefixes.has(path))) {
      for (const [key, child] of Object.entries(value)) {
        walk(path === '' ? key : `${path}.${key}`, child);
      }
      return;
    }
    if (prefixes.has(path)) {
      report(path, `holds ${describe(value)}, but ECS fields sit below it: it must be an object`);
      return;
    }
    report(
      path,
      `is not an ECS ${EcsVersion} field (custom fields belong under "${CUSTOM_NAMESPACE}.")`
    );
  }

  function checkField(path, field, value) {
    if (value === null) {
      report(path, 'is null; leave absent fields out');
      return;
    }
    if (OBJECT_TYPES.has(field.type)) {
      const items = field.type === 'nested' && Array.isArray(value) ? value : [value];
      for (const item of items) {
        if (!isPlainObject(item)) {
          report(path, `is a ${field.type} field, so it holds an object, not ${describe(item)}`);
          continue;
        }
        for (const [key, child] of Object.entries(item)) {
          const childPath = `${path}.${key}`;
          if (EcsFlat[childPath] || prefixes.has(childPath)) {
            walk(childPath, child);
          } else if (field.object_type && child !== null) {
            // Free-form keys (labels.*), whose values ECS still types.
            const problem = typeProblem(field.object_type, child);
            if (problem) report(childPath, problem);
          }
          // Other keys of an object or flattened field are the field's own free-form content.
        }
      }
      return;
    }
    let values = [value];
    if (Array.isArray(value)) {
      if (!(field.normalize || []).includes('array')) {
        report(path, 'is an array, but ECS does not normalise this field to an array');
        return;
      }
      values = value;
    }
    const allowed = field.allowed_values && field.allowed_values.map((v) => v.name);
    for (const item of values) {
      const problem = typeProblem(field.type, item);
      if (problem) {
        report(path, problem);
      } else if (allowed && !allowed.includes(item)) {
        report(path, `${describe(item)} is not an allowed value (${allowed.join(', ')})`);
      } else if (field.expected_values && !field.expected_values.includes(item)) {
        const expected = field.expected_values.join(', ');
        report(path, `${describe(item)} is not an expected value (${expected})`);
      }
    }
  }

  walk('', doc);

  for (const [name, field] of Object.entries(EcsFlat)) {
    if (field.required && !seen.has(name)) report(name, 'is required by ECS but missing');
  }
  const claimed = seen.get('ecs.version');
  if (claimed !== undefined && claimed !== EcsVersion) {
    report(
      'ecs.version',
      `is ${describe(claimed)}, but the documents are checked against ECS ${EcsVersion}`
    );
  }

  const asList = (value) => (value === undefined ? [] : [].concat(value));
  const categories = asList(seen.get('event.category'));
  const types = asList(seen.get('event.type'));
  if (categories.length > 0) {
    const expected = new Map(
      EcsFlat['event.category'].allowed_values.map((v) => [v.name, v.expected_event_types || []])
    );
    for (const type of types) {
      const fits = categories.some((category) => (expected.get(category) || []).includes(type));
      if (!fits) {
        const wanted = categories.map((c) => `${c}: ${(expected.get(c) || []).join(', ')}`);
        report(
          'event.type',
          `${describe(type)} is not an event type ECS expects for event.category ` +
            `${describe(categories)} (${wanted.join('; ')})`
        );
      }
    }
  }
}

function main() {
  const file = process.argv[2];
  if (!file || process.argv.length > 3) {
    console.error('usage: node validate_ecs.js DOCUMENTS.jsonl');
    process.exit(2);
  }
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    console.error(`cannot read ${file}: ${err.message}`);
    process.exit(2);
  }
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  let problems = 0;
  lines.forEach((line, index) => {
    const report = (key, message) => {
      problems += 1;
      console.log(`document ${index}: ${key}: ${message}`);
    };
    let doc;
    try {
      doc = JSON.parse(line);
    } catch (err) {
      report('(document)', `is not JSON: ${err.message}`);
      return;
    }
    checkDocument(doc, report);
  });
  if (lines.length === 0) {
    console.log(`${file} holds no documents`);
    process.exit(1);
  }
  if (problems > 0) {
    console.log(`${problems} problem(s) in ${lines.length} documents (ECS ${EcsVersion})`);
    process.exit(1);
  }
  console.log(`ECS ${EcsVersion}: ${lines.length} documents valid`);
}

main();

// Validate the custom resources the manifests use with @kubernetes-models (JSON schemas from the CRDs):
// Knative Services (@kubernetes-models/knative) and Prometheus Operator PodMonitors
// (@kubernetes-models/prometheus-operator).
//
//   node tests/knative/validate.mjs FILE.yaml... | -     (YAML, several documents each; - = stdin)
//
// Prints one JSON report per document: {source, index, kind, name, errors, unknown, skipped}. Exit 1 if any
// document has errors or unknown fields, 2 on bad input.
//
// Two checks per object:
//  1. the model's own validate(): types, enums, required keys, exactly as the package ships them;
//  2. unknown fields, which (1) lets through because the schemas do not forbid extra properties. The
//     package embeds its schemas as compiled validators, not as data, so this check watches the compiled
//     validator itself: it runs on a Proxy of the document that records which keys the validator reads.
//     A key the schema knows is always read (to check it); a map (labels, annotations: additionalProperties)
//     is enumerated as a whole. Any key of an object that was neither read nor enumerated is not in the
//     schema. Stricter than Knative where a schema is an open object ({}, e.g. affinity): we use none.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { Service } from "@kubernetes-models/knative/serving.knative.dev/v1";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const MODELS = { "serving.knative.dev/v1 Service": Service, "monitoring.coreos.com/v1 PodMonitor": PodMonitor };

function watch(value, path, records) {
  if (value === null || typeof value !== "object") return value;
  const record = { path, value, read: new Set(), listed: false };
  records.push(record);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string") return child;
      record.read.add(key);
      if (child === null || typeof child !== "object") return child;
      if (!children.has(key)) children.set(key, watch(child, `${path}/${key}`, records));
      return children.get(key);
    },
    ownKeys(target) {
      record.listed = true;
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(Model, doc) {
  const records = [];
  try {
    Model.prototype.validate.call(watch(doc, "", records));
  } catch {
    // reported by the plain validation; the reads made so far still count
  }
  const unknown = [];
  for (const { path, value, read, listed } of records) {
    if (Array.isArray(value) || listed) continue;
    for (const key of Object.keys(value)) if (!read.has(key)) unknown.push(`${path}/${key}`);
  }
  return unknown;
}

function check(doc) {
  const kind = `${doc?.apiVersion} ${doc?.kind}`;
  if (typeof doc?.apiVersion !== "string" || typeof doc?.kind !== "string") {
    return { kind, skipped: false, errors: ["apiVersion and kind must both be strings"], unknown: [] };
  }
  const Model = MODELS[kind];
  if (!Model) return { kind, skipped: true, errors: [], unknown: [] }; // not Knative: kubernetes-validate's
  const errors = [];
  try {
    new Model(doc).validate();
  } catch (err) {
    errors.push(err.message);
  }
  return { kind, name: doc?.metadata?.name, skipped: false, errors, unknown: unknownFields(Model, doc) };
}

const sources = process.argv.slice(2);
if (sources.length === 0) {
  console.error("usage: validate.mjs FILE.yaml... | -");
  process.exit(2);
}
let failed = false;
for (const source of sources) {
  const text = readFileSync(source === "-" ? 0 : source, "utf8");
  parseAllDocuments(text).forEach((parsed, index) => {
    if (parsed.errors.length) {
      console.error(`${source} document ${index}: ${parsed.errors[0].message}`);
      process.exit(2);
    }
    const doc = parsed.toJS();
    if (doc === null) return;
    const report = { source, index, ...check(doc) };
    failed ||= report.errors.length > 0 || report.unknown.length > 0;
    console.log(JSON.stringify(report));
  });
}
process.exit(failed ? 1 : 0);

// Validates Kubernetes objects against their schemas with kubernetes-models and
// @kubernetes-models/keda. Input: a JSON array of objects on stdin, each with an extra
// "__source" string naming where it came from. Prints one line per object; exits 1 when an
// object is invalid or of a kind no installed schema covers.
"use strict";

const fs = require("fs");

const modules = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "batch/v1": "kubernetes-models/batch/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "autoscaling/v2": "kubernetes-models/autoscaling/v2",
  "rbac.authorization.k8s.io/v1": "kubernetes-models/rbac.authorization.k8s.io/v1",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
};

function modelFor(apiVersion, kind) {
  const path = modules[apiVersion];
  if (!path) return null;
  const mod = require(path);
  return typeof mod[kind] === "function" ? mod[kind] : null;
}

const objects = JSON.parse(fs.readFileSync(0, "utf8"));
let bad = 0;
for (const raw of objects) {
  const source = raw.__source || "?";
  const obj = Object.assign({}, raw);
  delete obj.__source;
  const what = `${source}: ${obj.kind || "?"} ${obj.metadata && obj.metadata.name || "?"}`;
  const Model = modelFor(obj.apiVersion, obj.kind);
  if (!Model) {
    console.log(`FAIL ${what}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
    bad++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok   ${what}`);
  } catch (e) {
    const details = e.errors ? JSON.stringify(e.errors) : "";
    console.log(`FAIL ${what}: ${e.message} ${details}`);
    bad++;
  }
}
console.log(`${objects.length - bad} of ${objects.length} objects valid`);
process.exit(bad ? 1 : 0);

"""A small renderer for the kustomize features deploy/k8s uses, for machines without kubectl
(Debian 12 packages no kustomize, and its kubernetes-client is too old for components).

Supported: resources (files and folders), components, namespace, labels (includeSelectors and
includeTemplates false), configMapGenerator and secretGenerator (files, literals, behavior
create/replace/merge), images (newName, newTag) and patches given by path (strategic merge:
maps merge, lists of maps with a "name" key merge by name, other lists are replaced). Anything
else in a kustomization raises an error naming it, rather than rendering something different
from kustomize. Generated names get a content hash suffix like kustomize's (not the same
digits) and every reference to them in pod templates is renamed.

    python3 tests/deploy/kustomize_lite.py deploy/k8s/overlays/dev   # YAML on stdout
"""

import base64
import copy
import hashlib
import json
import os
import sys

import yaml

SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "labels", "resources", "components",
                  "configMapGenerator", "secretGenerator", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass", "PersistentVolume"}


class RenderError(Exception):
    pass


def _load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _kustomization(folder):
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            docs = _load_yaml_docs(p)
            if len(docs) != 1 or not isinstance(docs[0], dict):
                raise RenderError("%s: expected one mapping" % p)
            unknown = set(docs[0]) - SUPPORTED_KEYS
            if unknown:
                raise RenderError("%s: kustomize_lite does not support %s; render with kubectl"
                                  % (p, ", ".join(sorted(unknown))))
            return p, docs[0]
    raise RenderError("%s: no kustomization.yaml" % folder)


def _inside(root, path):
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return path == root or path.startswith(root + os.sep)


def _hash_suffix(obj):
    enc = json.dumps({"kind": obj["kind"], "name": obj["metadata"]["name"],
                      "type": obj.get("type"), "data": obj.get("data", {})},
                     sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(enc.encode()).hexdigest()[:10]


def _generator_data(folder, gen, secret):
    data = {}
    for f in gen.get("files", []):
        key, _, rel = f.partition("=") if "=" in f else (os.path.basename(f), "", f)
        path = os.path.join(folder, rel)
        if not _inside(folder, path):
            raise RenderError("%s: file %s lies outside the kustomization root" % (folder, rel))
        with open(path, "rb") as fh:
            raw = fh.read()
        data[key] = base64.b64encode(raw).decode() if secret else raw.decode()
    for lit in gen.get("literals", []):
        key, sep, value = lit.partition("=")
        if not sep:
            raise RenderError("%s: literal %r has no '='" % (folder, lit))
        data[key] = base64.b64encode(value.encode()).decode() if secret else value
    extra = set(gen) - {"name", "files", "literals", "behavior", "type"}
    if extra:
        raise RenderError("%s: generator keys not supported: %s" % (folder, sorted(extra)))
    return data


def _merge(base, patch):
    """Strategic merge, the subset deploy/k8s uses."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if "$patch" in patch:
            raise RenderError("$patch directives are not supported")
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and
            all(isinstance(x, dict) and "name" in x for x in base + patch)):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            for i, cur in enumerate(out):
                if cur["name"] == item["name"]:
                    out[i] = _merge(cur, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _key(obj):
    return (obj.get("apiVersion"), obj.get("kind"), obj["metadata"]["name"])


class _Build:
    def __init__(self):
        self.objects = []   # rendered objects, in order
        self.generated = {}  # (kind, name) -> generator dict (kept unhashed until the end)

    def add(self, obj, where):
        for o in self.objects:
            if _key(o) == _key(obj):
                raise RenderError("%s: %s %s defined twice" % (where, obj["kind"],
                                                               obj["metadata"]["name"]))
        self.objects.append(obj)


def _render_into(folder, build, root_of_component=False):
    path, k = _kustomization(folder)
    kind = k.get("kind", "Kustomization")
    if root_of_component and kind != "Component":
        raise RenderError("%s: listed under components but is a %s" % (path, kind))
    for res in k.get("resources", []):
        rp = os.path.normpath(os.path.join(folder, res))
        if os.path.isdir(rp):
            _render_into(rp, build)
        else:
            if not _inside(folder, rp):
                raise RenderError("%s: resource %s lies outside the kustomization root"
                                  % (path, res))
            for obj in _load_yaml_docs(rp):
                build.add(copy.deepcopy(obj), rp)
    for comp in k.get("components", []):
        _render_into(os.path.normpath(os.path.join(folder, comp)), build, True)

    for gkey, gkind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for gen in k.get(gkey, []):
            data = _generator_data(folder, gen, gkind == "Secret")
            behavior = gen.get("behavior", "create")
            existing = [o for o in build.objects
                        if o["kind"] == gkind and o["metadata"]["name"] == gen["name"]]
            if behavior == "create":
                if existing:
                    raise RenderError("%s: %s %s exists; use behavior merge or replace"
                                      % (path, gkind, gen["name"]))
                obj = {"apiVersion": "v1", "kind": gkind,
                       "metadata": {"name": gen["name"]}, "data": data}
                if gkind == "Secret":
                    obj["type"] = gen.get("type", "Opaque")
                build.add(obj, path)
                build.generated[(gkind, gen["name"])] = obj
            elif behavior in ("replace", "merge"):
                if not existing:
                    raise RenderError("%s: %s %s to %s does not exist"
                                      % (path, gkind, gen["name"], behavior))
                obj = existing[0]
                obj["data"] = data if behavior == "replace" else dict(obj["data"], **data)
            else:
                raise RenderError("%s: unknown behavior %r" % (path, behavior))

    for p in k.get("patches", []):
        if set(p) != {"path"}:
            raise RenderError("%s: only patches with a path are supported: %r" % (path, p))
        for patch in _load_yaml_docs(os.path.join(folder, p["path"])):
            matches = [o for o in build.objects if o["kind"] == patch["kind"] and
                       o["metadata"]["name"] == patch["metadata"]["name"]]
            if len(matches) != 1:
                raise RenderError("%s: patch %s matches %d objects"
                                  % (path, p["path"], len(matches)))
            idx = build.objects.index(matches[0])
            build.objects[idx] = _merge(matches[0], patch)
            for gk, g in list(build.generated.items()):
                if g is matches[0]:
                    build.generated[gk] = build.objects[idx]

    for img in k.get("images", []):
        extra = set(img) - {"name", "newName", "newTag"}
        if extra:
            raise RenderError("%s: image keys not supported: %s" % (path, sorted(extra)))
        for obj in build.objects:
            for c in _containers(obj):
                name, tag = _split_image(c.get("image", ""))
                if name == img["name"]:
                    c["image"] = "%s:%s" % (img.get("newName", name), img.get("newTag", tag))

    for lab in k.get("labels", []):
        if lab.get("includeSelectors") or lab.get("includeTemplates"):
            raise RenderError("%s: labels with includeSelectors/includeTemplates are not "
                              "supported" % path)
        for obj in build.objects:
            obj["metadata"].setdefault("labels", {}).update(lab.get("pairs", {}))

    if "namespace" in k:
        for obj in build.objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = k["namespace"]


def _split_image(image):
    if "@" in image:
        return image.split("@", 1)[0], ""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        return image.rsplit(":", 1)[0], image.rsplit(":", 1)[1]
    return image, ""


def _pod_spec(obj):
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return spec.get("template", {}).get("spec")
    if obj["kind"] == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if obj["kind"] == "Pod":
        return spec
    return None


def _containers(obj):
    ps = _pod_spec(obj)
    if not ps:
        return []
    return ps.get("containers", []) + ps.get("initContainers", [])


def _rename_refs(obj, renames):
    ps = _pod_spec(obj)
    if not ps:
        return
    for v in ps.get("volumes", []):
        if "configMap" in v:
            v["configMap"]["name"] = renames.get(("ConfigMap", v["configMap"]["name"]),
                                                 v["configMap"]["name"])
        if "secret" in v:
            v["secret"]["secretName"] = renames.get(("Secret", v["secret"]["secretName"]),
                                                    v["secret"]["secretName"])
        for src in v.get("projected", {}).get("sources", []):
            for kind, field in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if field in src:
                    src[field]["name"] = renames.get((kind, src[field]["name"]),
                                                     src[field]["name"])
    for c in _containers(obj):
        for e in c.get("env", []):
            vf = e.get("valueFrom", {})
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if field in vf:
                    vf[field]["name"] = renames.get((kind, vf[field]["name"]), vf[field]["name"])
        for e in c.get("envFrom", []):
            for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if field in e:
                    e[field]["name"] = renames.get((kind, e[field]["name"]), e[field]["name"])


def render(folder):
    """Returns the list of objects kustomize would build from folder."""
    build = _Build()
    _render_into(folder, build)
    renames = {}
    for (kind, name), obj in build.generated.items():
        new = "%s-%s" % (name, _hash_suffix(obj))
        renames[(kind, name)] = new
        obj["metadata"]["name"] = new
    for obj in build.objects:
        _rename_refs(obj, renames)
    return build.objects


def main(argv):
    if len(argv) != 2:
        print("usage: kustomize_lite.py FOLDER", file=sys.stderr)
        return 2
    try:
        objs = render(argv[1])
    except (RenderError, OSError, yaml.YAMLError) as e:
        print("kustomize_lite: %s" % e, file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

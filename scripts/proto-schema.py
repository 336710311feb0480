#!/usr/bin/env python3
"""Writes src/providers/sandbox/proto_schema.rs: the protobuf field numbers of the
built-in Kubernetes types the sandbox accepts as protobuf bodies, read from the Go
types (their `json` and `protobuf` struct tags) of a k8s.io/api checkout.

    python3 scripts/proto-schema.py PATH/TO/k8s.io/api > src/providers/sandbox/proto_schema.rs

The roots are the kinds in ROOTS; every message they reach is written. A field whose
Go type this script does not know is written as `Ty::Unknown`: a body that sets it is
refused (the sandbox answers 415) rather than half-read.
"""
import os
import re
import sys

GROUPS = {
    # folder: (apiVersion, files)
    "core/v1": "v1",
    "apps/v1": "apps/v1",
    "batch/v1": "batch/v1",
    "policy/v1": "policy/v1",
    "scheduling/v1": "scheduling.k8s.io/v1",
    "networking/v1": "networking.k8s.io/v1",
    "rbac/v1": "rbac.authorization.k8s.io/v1",
    "authentication/v1": "authentication.k8s.io/v1",
    "authorization/v1": "authorization.k8s.io/v1",
    "autoscaling/v1": "autoscaling/v1",
    "autoscaling/v2": "autoscaling/v2",
}

# The kinds typed clients (kubectl create …, kubectl autoscale, helm's release
# storage) send as protobuf, and the other namespaced and cluster kinds of these groups.
ROOTS = {
    "core/v1": ["Secret", "ConfigMap", "Namespace", "ServiceAccount", "Service", "Pod",
                "Endpoints", "PersistentVolumeClaim", "PersistentVolume", "LimitRange",
                "ResourceQuota", "ReplicationController", "PodTemplate"],
    "apps/v1": ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"],
    "batch/v1": ["Job", "CronJob"],
    "policy/v1": ["PodDisruptionBudget"],
    "scheduling/v1": ["PriorityClass"],
    "networking/v1": ["Ingress", "IngressClass", "NetworkPolicy"],
    "rbac/v1": ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"],
    "authentication/v1": ["SelfSubjectReview", "TokenRequest"],
    "authorization/v1": ["SelfSubjectAccessReview", "SelfSubjectRulesReview"],
    "autoscaling/v1": ["HorizontalPodAutoscaler"],
    "autoscaling/v2": ["HorizontalPodAutoscaler"],
}

# Types of other packages, by how their protobuf and JSON forms relate.
EXTERNAL = {
    "metav1.ObjectMeta": "Meta",
    "metav1.ListMeta": "Skip",
    "metav1.Time": "Unknown",
    "metav1.MicroTime": "Unknown",
    "metav1.Duration": "Unknown",
    "metav1.LabelSelector": "Msg(\"meta/v1.LabelSelector\")",
    "metav1.Condition": "Skip",
    "metav1.LabelSelectorRequirement": "Msg(\"meta/v1.LabelSelectorRequirement\")",
    "metav1.FieldSelectorRequirement": "Msg(\"meta/v1.LabelSelectorRequirement\")",
    "resource.Quantity": "Quantity",
    "intstr.IntOrString": "IntOrString",
    "types.UID": "Str",
}
SCALARS = {"string": "Str", "bool": "Bool", "int32": "Int", "int64": "Int", "int": "Int",
           "[]byte": "Unknown"}

STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)\n\}", re.S | re.M)
ALIAS = re.compile(r"^type (\w+) (\S+)\s*$", re.M)
FIELD = re.compile(r"^\s*(?:(\w+)\s+)?([^\s`]+)\s+`([^`]*)`")


def tag(tags, key):
    m = re.search(key + r':"([^"]*)"', tags)
    return m.group(1) if m else None


def load(root):
    structs, aliases = {}, {}
    for folder in GROUPS:
        text = open(os.path.join(root, folder, "types.go")).read()
        text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
        for m in STRUCT.finditer(text):
            structs[(folder, m.group(1))] = m.group(2)
        for m in ALIAS.finditer(text):
            aliases[(folder, m.group(1))] = m.group(2)
    return structs, aliases


def main():
    root = sys.argv[1]
    structs, aliases = load(root)
    out, todo, seen = {}, [], set()

    def ty(folder, go):
        """(Rust Ty, repeated, map kind) of a Go type."""
        rep = False
        if go.startswith("*"):
            go = go[1:]
        if go.startswith("[]") and go != "[]byte":
            rep, go = True, go[2:]
            if go.startswith("*"):
                go = go[1:]
        if go.startswith("map["):
            key, val = re.match(r"map\[(\w+)\](\S+)", go).groups()
            val = resolve(folder, val)
            kind = {"string": "MapStr", "[]byte": "MapBytes", "resource.Quantity": "MapQuantity"}
            if val in kind:
                return kind[val], rep
            if val == "[]string":
                return "MapStrings", rep
            return "Unknown", rep
        go = resolve(folder, go)
        if go.startswith("map["):
            return ty(folder, go)
        if go.startswith("[]") and go != "[]byte":
            t, _ = ty(folder, go)
            return t, True
        if go in SCALARS:
            return SCALARS[go], rep
        if go in EXTERNAL:
            return EXTERNAL[go], rep
        if (folder, go) in structs:
            name = f"{folder}.{go}"
            if name not in seen:
                seen.add(name)
                todo.append((folder, go))
            return f'Msg("{name}")', rep
        pkg = {"corev1.": "core/v1", "v1.": "core/v1", "apiv1.": "core/v1",
               "autoscalingv1.": "autoscaling/v1"}
        for p, f in pkg.items():
            if go.startswith(p) and (f, go[len(p):]) in structs:
                return ty(f, go[len(p):])[0], rep
        return "Unknown", rep

    def resolve(folder, go):
        seen_alias = 0
        while (folder, go) in aliases and seen_alias < 8:
            go = aliases[(folder, go)]
            seen_alias += 1
        for p in ("corev1.", "v1.", "apiv1."):
            if go.startswith(p) and ("core/v1", go[len(p):]) in aliases:
                return resolve("core/v1", go[len(p):])
        return go

    roots = []
    for folder, kinds in ROOTS.items():
        for k in kinds:
            roots.append((GROUPS[folder], k, f"{folder}.{k}"))
            seen.add(f"{folder}.{k}")
            todo.append((folder, k))
    root_kinds = {k for _, k, _ in roots}
    while todo:
        folder, name = todo.pop(0)
        body = structs[(folder, name)]
        fields = []
        for line in body.split("\n"):
            m = FIELD.match(line)
            if not m:
                continue
            fname, go, tags = m.groups()
            proto = tag(tags, "protobuf")
            js = tag(tags, "json")
            if proto is None or proto == "-" or js is None:
                continue
            parts = proto.split(",")
            number = int(parts[1])
            jname, _, opts = js.partition(",")
            if fname == "Status" and number == 3 and name in root_kinds:
                # Set by the server: a body's status is not read.
                fields.append((number, jname, "Skip", "0"))
                continue
            t, rep = ty(folder, go)
            flags = []
            if rep:
                flags.append("REP")
            if go.startswith("*"):
                flags.append("PTR")
            if "omitempty" in opts:
                flags.append("OMIT")
            if (fname is None and jname == "") or "inline" in opts:
                flags.append("INLINE")
            fields.append((number, jname, t, "|".join(flags) or "0"))
        out[f"{folder}.{name}"] = fields

    print("// @generated by scripts/proto-schema.py from the Go types of k8s.io/api: do not edit.")
    print("//! The protobuf field numbers and JSON names of the built-in types the sandbox reads")
    print("//! from protobuf bodies ([`super::proto`]).")
    print()
    print("use super::proto::{Field, Ty::*, INLINE, OMIT, PTR, REP};")
    print()
    print("/// The message of a kind sent as protobuf, by apiVersion and kind.")
    print("pub fn root(api_version: &str, kind: &str) -> Option<&'static str> {")
    print("    Some(match (api_version, kind) {")
    for av, k, name in roots:
        print(f'        ("{av}", "{k}") => "{name}",')
    print("        _ => return None,")
    print("    })")
    print("}")
    print()
    print("/// The fields of a message, by its name (`folder.Type`).")
    print("pub fn message(name: &str) -> Option<&'static [Field]> {")
    print("    Some(match name {")
    print('        "meta/v1.LabelSelector" => &[')
    print('            Field(1, "matchLabels", MapStr, OMIT),')
    print('            Field(2, "matchExpressions", Msg("meta/v1.LabelSelectorRequirement"), REP | OMIT),')
    print("        ],")
    print('        "meta/v1.LabelSelectorRequirement" => &[')
    print('            Field(1, "key", Str, 0),')
    print('            Field(2, "operator", Str, 0),')
    print('            Field(3, "values", Str, REP | OMIT),')
    print("        ],")
    for name in sorted(out):
        print(f'        "{name}" => &[')
        for number, jname, t, flags in out[name]:
            print(f'            Field({number}, "{jname}", {t}, {flags}),')
        print("        ],")
    print("        _ => return None,")
    print("    })")
    print("}")


if __name__ == "__main__":
    main()

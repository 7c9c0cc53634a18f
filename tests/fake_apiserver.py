#!/usr/bin/env python3
"""Fake kube-apiserver (v1.26.1 behaviour) for gpu-extender tests.

Standard library only.  Serves nodes, pods and policy/v1
PodDisruptionBudgets from memory: get, list (with pagination and selectors),
watch (chunked NDJSON with bookmarks and 410 expiry), create, patch, update,
delete (pod graceful deletion), the status subresources and the pods/binding
subresource, all behind bearer-token or client-certificate auth.  Status bodies are shaped exactly like the captures in
tests/fixtures/kube-1.26/apiserver/raw/.  Faults and inspection are driven
through the unauthenticated /_admin API; see tests/fake_apiserver.md.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import copy
import datetime as dt
import gzip
import json
import os
import re
import select
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

NODES = "nodes"
PODS = "pods"
PDBS = "poddisruptionbudgets"
RESOURCES = (NODES, PODS, PDBS)
KIND = {NODES: "Node", PODS: "Pod", PDBS: "PodDisruptionBudget"}
LIST_KIND = {NODES: "NodeList", PODS: "PodList", PDBS: "PodDisruptionBudgetList"}
API_VERSION = {NODES: "v1", PODS: "v1", PDBS: "policy/v1"}
GROUP = {NODES: "", PODS: "", PDBS: "policy"}
NAMESPACED = (PODS, PDBS)
KIND_RES = {v: k for k, v in KIND.items()}


def qualified(res) -> str:
    """The resource as kube-apiserver names it in messages: "pods", "poddisruptionbudgets.policy"."""
    return f"{res}.{GROUP[res]}" if GROUP.get(res) else res

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

# Go's net/http switches to chunked encoding once a handler has written more
# than this many bytes without a Content-Length (bufferBeforeChunkingSize).
GO_CHUNK_THRESHOLD = 2048
# kube-apiserver gzips responses of at least 128 KiB when the client asks.
GZIP_THRESHOLD = 128 * 1024
MAX_RECORDS = 10000

PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
]
BODY_TYPES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]

VERSION_INFO = {
    "major": "1",
    "minor": "26",
    "gitVersion": "v1.26.1",
    "gitCommit": "8f94681cd294aa8cfd3407b8191f6c70214973a4",
    "gitTreeState": "clean",
    "buildDate": "2023-01-18T15:51:25Z",
    "goVersion": "go1.19.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# GET /apis/policy/v1 (discovery), as 1.26 lists it (storageVersionHash left out)
POLICY_V1_RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "policy/v1",
    "resources": [
        {"name": "poddisruptionbudgets", "singularName": "", "namespaced": True, "kind": "PodDisruptionBudget",
         "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
         "shortNames": ["pdb"]},
        {"name": "poddisruptionbudgets/status", "singularName": "", "namespaced": True,
         "kind": "PodDisruptionBudget", "verbs": ["get", "patch", "update"]},
    ]}

FLOWSCHEMA_UID = str(uuid.uuid4())
PRIORITYLEVEL_UID = str(uuid.uuid4())

# --------------------------------------------------------------------------
# JSON helpers (Go encoding/json look-alike)
# --------------------------------------------------------------------------


def _go_escape(s: str) -> str:
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def go_json(obj) -> bytes:
    """Compact JSON the way Go's encoder writes it (no trailing newline)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return _go_escape(s).encode("utf-8", "replace")


def go_json_pretty(obj) -> bytes:
    s = json.dumps(obj, indent=2, separators=(",", ": "), ensure_ascii=False)
    return _go_escape(s).encode("utf-8", "replace")


def now_ts(offset_seconds: float = 0) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(s: str):
    try:
        return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        return None


def fmt_ts(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bool(v) -> bool:
    return v in ("1", "t", "T", "true", "TRUE", "True")


# --------------------------------------------------------------------------
# Status bodies.  Field order follows metav1.Status; the shapes are those of
# the raw captures (401, 404, 400, 409, 201).
# --------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered with a metav1.Status body (or a raw body)."""

    def __init__(self, code: int, body, headers=None, ctype="application/json"):
        super().__init__(code)
        self.code = code
        self.body = body
        self.headers = headers or []
        self.ctype = ctype


def status_body(code, reason=None, message=None, details=None, metadata=None, success=False):
    d = {"kind": "Status", "apiVersion": "v1", "metadata": metadata if metadata is not None else {},
         "status": "Success" if success else "Failure"}
    if message:
        d["message"] = message
    if reason:
        d["reason"] = reason
    if details is not None:
        d["details"] = details
    if code:
        d["code"] = code
    return d


def st_unauthorized():
    return ApiError(401, status_body(401, "Unauthorized", "Unauthorized"))


def _details(resource, name):
    """Status details for a resource: the group appears for every group but the core one."""
    d = {"name": name}
    if GROUP.get(resource):
        d["group"] = GROUP[resource]
    d["kind"] = resource
    return d


def st_not_found(resource, name):
    return ApiError(404, status_body(404, "NotFound", f'{qualified(resource)} "{name}" not found',
                                     _details(resource, name)))


def st_not_found_generic():
    return ApiError(404, status_body(404, "NotFound", "the server could not find the requested resource", {}))


def st_already_exists(resource, name):
    return ApiError(409, status_body(409, "AlreadyExists", f'{qualified(resource)} "{name}" already exists',
                                     _details(resource, name)))


def st_conflict(resource, name, err):
    return ApiError(409, status_body(409, "Conflict",
                                     f'Operation cannot be fulfilled on {qualified(resource)} "{name}": {err}',
                                     _details(resource, name)))


def st_bad_request(message):
    return ApiError(400, status_body(400, "BadRequest", message))


def st_method_not_allowed():
    return ApiError(405, status_body(405, "MethodNotAllowed",
                                     "the server does not allow this method on the requested resource", {}))


def st_unsupported_media(accepted):
    return ApiError(415, status_body(
        415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted)))


def st_invalid(kind, name, causes):
    """422 Invalid; causes = [(reason, field, message)]."""
    parts = [f"{field}: {msg}" for _, field, msg in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    group = GROUP.get(KIND_RES.get(kind, ""), "")
    details = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": r, "message": m, "field": f} for r, f, m in causes]
    return ApiError(422, status_body(
        422, "Invalid", f'{kind}{"." + group if group else ""} "{name}" is invalid: {summary}', details))


def st_internal(message):
    return ApiError(500, status_body(500, "InternalError", f"Internal error occurred: {message}",
                                     {"causes": [{"message": message}]}))


def st_forbidden(resource, name, verb, ns, user="system:anonymous", subresource=None, path=None):
    if resource is None:
        msg = f'forbidden: User "{user}" cannot {verb} path "{path}"'
        return ApiError(403, status_body(403, "Forbidden", msg, {}))
    full = resource + ("/" + subresource if subresource else "")
    scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    group = GROUP.get(resource, "")
    why = f'User "{user}" cannot {verb} resource "{full}" in API group "{group}" {scope}'
    qres = qualified(resource) if resource in GROUP else resource
    msg = f'{qres} "{name}" is forbidden: {why}' if name else f"{qres} is forbidden: {why}"
    details = _details(resource, name) if name else {k: v for k, v in _details(resource, "").items()
                                                     if k != "name"}
    return ApiError(403, status_body(403, "Forbidden", msg, details))


CONTINUE_EXPIRED_MSG = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and "
    "now may show up in the list.")


def generic_status_for(code: int):
    """Body used by the 'status' fault when no body is given."""
    table = {
        400: ("BadRequest", "the server rejected our request for an unknown reason"),
        403: ("Forbidden", "forbidden: the server does not allow access to the requested resource"),
        404: ("NotFound", "the server could not find the requested resource"),
        405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
        409: ("Conflict", "the server reported a conflict"),
        410: ("Expired", "the resource has expired"),
        422: ("Invalid", "the server rejected our request due to an error in our request"),
        500: ("InternalError", "an error on the server (\"\") has prevented the request from succeeding"),
        503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
        504: ("Timeout", "Timeout: request did not complete within the allotted timeout"),
    }
    if code == 401:
        return st_unauthorized().body
    reason, msg = table.get(code, ("", f"the server responded with the status code {code} but did not "
                                      "return more information"))
    return status_body(code, reason or None, msg, {})


# --------------------------------------------------------------------------
# Canonical key order (Go struct field order) for objects we build or patch
# --------------------------------------------------------------------------

TOP_ORDER = ["kind", "apiVersion", "metadata", "spec", "status"]
META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
              "annotations", "ownerReferences", "finalizers", "managedFields"]
POD_SPEC_ORDER = ["volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
                  "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
                  "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
                  "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext",
                  "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
                  "hostAliases", "priorityClassName", "priority", "dnsConfig", "readinessGates",
                  "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
                  "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
                  "resourceClaims"]
CONTAINER_ORDER = ["name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
                   "volumeMounts", "volumeDevices", "livenessProbe", "readinessProbe", "startupProbe",
                   "lifecycle", "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy",
                   "securityContext", "stdin", "stdinOnce", "tty"]
POD_STATUS_ORDER = ["phase", "conditions", "message", "reason", "nominatedNodeName", "hostIP", "podIP",
                    "podIPs", "startTime", "initContainerStatuses", "containerStatuses", "qosClass",
                    "ephemeralContainerStatuses"]
COND_ORDER = ["type", "status", "lastProbeTime", "lastHeartbeatTime", "lastTransitionTime", "reason", "message"]
PDB_SPEC_ORDER = ["minAvailable", "selector", "maxUnavailable", "unhealthyPodEvictionPolicy"]
PDB_STATUS_ORDER = ["observedGeneration", "disruptedPods", "disruptionsAllowed", "currentHealthy",
                    "desiredHealthy", "expectedPods", "conditions"]


def ordered(d, order):
    if not isinstance(d, dict):
        return d
    out = {k: d[k] for k in order if k in d}
    for k, v in d.items():
        if k not in out:
            out[k] = v
    return out


def canonical(obj, res):
    obj = ordered(obj, TOP_ORDER)
    if isinstance(obj.get("metadata"), dict):
        obj["metadata"] = ordered(obj["metadata"], META_ORDER)
    st = obj.get("status")
    if res == PODS:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec = ordered(spec, POD_SPEC_ORDER)
            for key in ("initContainers", "containers"):
                if isinstance(spec.get(key), list):
                    spec[key] = [ordered(c, CONTAINER_ORDER) for c in spec[key]]
            obj["spec"] = spec
        if isinstance(st, dict):
            st = ordered(st, POD_STATUS_ORDER)
            obj["status"] = st
    elif res == PDBS:
        if isinstance(obj.get("spec"), dict):
            obj["spec"] = ordered(obj["spec"], PDB_SPEC_ORDER)
        if isinstance(st, dict):
            st = ordered(st, PDB_STATUS_ORDER)
            obj["status"] = st
    if isinstance(st, dict) and isinstance(st.get("conditions"), list):
        st["conditions"] = [ordered(c, COND_ORDER) for c in st["conditions"]]
    return obj


def meta(obj) -> dict:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def obj_key(res, obj) -> str:
    m = obj.get("metadata") or {}
    if res in NAMESPACED:
        return f'{m.get("namespace", "")}/{m.get("name", "")}'
    return m.get("name", "")


def strip_type(obj):
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


# --------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------


def _split_top(s):
    out, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


_LKEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"


def parse_label_selector(s):
    reqs = []
    if not s:
        return reqs
    for term in _split_top(s):
        t = term.strip()
        m = re.fullmatch(rf"({_LKEY})\s+(in|notin)\s+\(([^()]*)\)", t)
        if m:
            vals = {v.strip() for v in m.group(3).split(",")}
            reqs.append((m.group(2), m.group(1), vals))
            continue
        m = re.fullmatch(rf"!\s*({_LKEY})", t)
        if m:
            reqs.append(("!", m.group(1), None))
            continue
        m = re.fullmatch(rf"({_LKEY})\s*(==|=|!=|>|<)\s*([-A-Za-z0-9_.]*)", t)
        if m:
            op = "=" if m.group(2) == "==" else m.group(2)
            reqs.append((op, m.group(1), m.group(3)))
            continue
        m = re.fullmatch(rf"({_LKEY})", t)
        if m:
            reqs.append(("exists", m.group(1), None))
            continue
        raise st_bad_request(f"unable to parse requirement: found '{t}', expected: "
                             "',', '!=', '==', '=', 'in', 'notin', identifier")
    return reqs


def label_match(reqs, labels):
    labels = labels or {}
    for op, k, v in reqs:
        has = k in labels
        val = labels.get(k)
        if op == "=":
            ok = has and val == v
        elif op == "!=":
            ok = (not has) or val != v
        elif op == "in":
            ok = has and val in v
        elif op == "notin":
            ok = (not has) or val not in v
        elif op == "exists":
            ok = has
        elif op == "!":
            ok = not has
        elif op in (">", "<"):
            try:
                a, b = int(val), int(v)
                ok = a > b if op == ">" else a < b
            except (TypeError, ValueError):
                ok = False
        else:
            ok = False
        if not ok:
            return False
    return True


def _pod_field(o, path):
    m, s, st = o.get("metadata") or {}, o.get("spec") or {}, o.get("status") or {}
    if path == "metadata.name":
        return m.get("name", "")
    if path == "metadata.namespace":
        return m.get("namespace", "")
    if path == "spec.hostNetwork":
        return "true" if s.get("hostNetwork") else "false"
    if path.startswith("spec."):
        return str(s.get(path[5:], "") or "")
    if path.startswith("status."):
        return str(st.get(path[7:], "") or "")
    return ""


def _node_field(o, path):
    m, s = o.get("metadata") or {}, o.get("spec") or {}
    if path == "metadata.name":
        return m.get("name", "")
    if path == "spec.unschedulable":
        return "true" if s.get("unschedulable") else "false"
    return ""


FIELDS = {
    PODS: {"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
           "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
           "status.nominatedNodeName"},
    NODES: {"metadata.name", "spec.unschedulable"},
    PDBS: {"metadata.name", "metadata.namespace"},
}


def _meta_field(o, path):
    m = o.get("metadata") or {}
    return m.get(path[len("metadata."):], "") if path.startswith("metadata.") else ""


def parse_field_selector(s, res):
    reqs = []
    if not s:
        return reqs
    for term in s.split(","):
        t = term.strip()
        m = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", t)
        if not m:
            raise st_bad_request(f"invalid selector: '{s}'; can't understand '{t}'")
        field, op, val = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in FIELDS[res]:
            raise st_bad_request(f"field label not supported: {field}")
        reqs.append((field, op != "!=", val))
    return reqs


def field_match(reqs, res, obj):
    get = {PODS: _pod_field, NODES: _node_field}.get(res, _meta_field)
    for field, eq, val in reqs:
        if (get(obj, field) == val) != eq:
            return False
    return True


# --------------------------------------------------------------------------
# Patching
# --------------------------------------------------------------------------


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


SMP_MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
                  "volumes": "name", "env": "name", "volumeMounts": "mountPath", "ports": "containerPort",
                  "conditions": "type", "ownerReferences": "uid", "addresses": "type",
                  "imagePullSecrets": "name", "podIPs": "ip", "hostIPs": "ip"}
SMP_PRIMITIVE_MERGE = {"finalizers"}


def strategic_merge_patch(target, patch):
    """Strategic merge patch for the well-known merge keys; otherwise RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            lk = k.split("/", 1)[1]
            if isinstance(result.get(lk), list) and isinstance(v, list):
                result[lk] = [x for x in result[lk] if x not in v]
            continue
        if k.startswith("$setElementOrder/") or k.startswith("$retainKeys"):
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, list) and k in SMP_MERGE_KEYS and isinstance(result.get(k), list):
            mk = SMP_MERGE_KEYS[k]
            cur = [copy.deepcopy(x) for x in result[k]]
            for item in v:
                if not isinstance(item, dict) or mk not in item:
                    cur.append(copy.deepcopy(item))
                    continue
                idx = next((i for i, x in enumerate(cur) if isinstance(x, dict) and x.get(mk) == item[mk]), None)
                if item.get("$patch") == "delete":
                    if idx is not None:
                        cur.pop(idx)
                elif idx is None:
                    cur.append({a: b for a, b in item.items() if a != "$patch"})
                else:
                    merged = strategic_merge_patch(cur[idx], item)
                    cur[idx] = merged
            result[k] = cur
        elif isinstance(v, list) and k in SMP_PRIMITIVE_MERGE and isinstance(result.get(k), list):
            cur = list(result[k])
            for x in v:
                if x not in cur:
                    cur.append(x)
            result[k] = cur
        elif isinstance(v, dict):
            sub = strategic_merge_patch(result.get(k), v)
            if sub is None:
                result.pop(k, None)
            else:
                result[k] = sub
        else:
            result[k] = copy.deepcopy(v)
    return result


class JsonPatchError(Exception):
    pass


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f'JSON pointer must be empty or start with a "/": {path}')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _ptr_parent(doc, toks, op, path):
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise JsonPatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    return cur


def json_patch(doc, ops):
    """RFC 6902."""
    if not isinstance(ops, list):
        raise JsonPatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)

    def get(path):
        cur = doc
        for t in _ptr(path):
            if isinstance(cur, dict) and t in cur:
                cur = cur[t]
            elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
                cur = cur[int(t)]
            else:
                raise JsonPatchError(f'doc is missing path: "{path}": missing value')
        return cur

    def add(path, value, op="add"):
        nonlocal doc
        toks = _ptr(path)
        if not toks:
            doc = value
            return
        parent = _ptr_parent(doc, toks, op, path)
        last = toks[-1]
        if isinstance(parent, dict):
            parent[last] = value
        elif isinstance(parent, list):
            if last == "-":
                parent.append(value)
            elif last.isdigit() and int(last) <= len(parent):
                parent.insert(int(last), value)
            else:
                raise JsonPatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
        else:
            raise JsonPatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value')

    def remove(path, op="remove"):
        toks = _ptr(path)
        parent = _ptr_parent(doc, toks, op, path)
        last = toks[-1] if toks else ""
        if isinstance(parent, dict) and last in parent:
            return parent.pop(last)
        if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
            return parent.pop(int(last))
        raise JsonPatchError(f'{op} operation does not apply: doc is missing path: "{path}": missing value')

    for o in ops:
        if not isinstance(o, dict):
            raise JsonPatchError("invalid operation")
        op, path = o.get("op"), o.get("path", "")
        if op == "add":
            add(path, copy.deepcopy(o.get("value")))
        elif op == "remove":
            remove(path)
        elif op == "replace":
            remove(path, "replace")
            add(path, copy.deepcopy(o.get("value")), "replace")
        elif op == "move":
            v = remove(o.get("from", ""), "move")
            add(path, v, "move")
        elif op == "copy":
            add(path, copy.deepcopy(get(o.get("from", ""))), "copy")
        elif op == "test":
            if get(path) != o.get("value"):
                raise JsonPatchError(f'testing value {path} failed: test failed')
        else:
            raise JsonPatchError(f"Unexpected kind: {op}")
    return doc


# --------------------------------------------------------------------------
# Continue tokens (same encoding idea as apiserver: base64url JSON)
# --------------------------------------------------------------------------


def encode_continue(start_key: str, rv: int) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start_key + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(tok: str):
    try:
        pad = "=" * (-len(tok) % 4)
        data = base64.urlsafe_b64decode((tok + pad).encode("ascii"))
        c = json.loads(data)
    except (ValueError, UnicodeError) as e:
        raise st_bad_request(f"invalid continue token: continue key is not valid: {e}")
    if not isinstance(c, dict) or c.get("v") != "meta.k8s.io/v1":
        raise st_bad_request("invalid continue token: continue key is not valid: server does not recognize "
                             "this encoded version")
    rv, start = c.get("rv"), c.get("start")
    if not isinstance(rv, int) or rv == 0:
        raise st_bad_request("invalid continue token: continue key is not valid: incorrect encoded start "
                             "resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise st_bad_request("invalid continue token: continue key is not valid: encoded start key empty")
    if ".." in start.split("/"):
        raise st_bad_request("invalid continue token: continue key is not valid: ..")
    return start, rv


# --------------------------------------------------------------------------
# Store
# --------------------------------------------------------------------------


class Event:
    __slots__ = ("rv", "type", "res", "key", "obj", "prev")

    def __init__(self, rv, typ, res, key, obj, prev):
        self.rv, self.type, self.res, self.key, self.obj, self.prev = rv, typ, res, key, obj, prev


class WatchInfo:
    def __init__(self, wid, res, path, query, client):
        self.id, self.res, self.path, self.query, self.client = wid, res, path, query, client
        self.started = time.time()
        self.close_mode = None
        self.sent = 0


class Store:
    """All state; every access holds self.lock (self.cond shares it).

    Stored objects are never mutated in place: a mutation builds a new object,
    so event-log entries and responses can share them safely.
    """

    def __init__(self, initial_rv: int, window: int):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = initial_rv
        self.compacted_rv = initial_rv
        self.objs = {res: {} for res in RESOURCES}
        self.events: list[Event] = []
        self.event_rvs: list[int] = []
        self.window = max(1, window)
        self.watches: dict[int, WatchInfo] = {}
        self._wid = 0

    def seed(self, res, obj):
        obj = canonical(copy.deepcopy(obj), res)
        obj.setdefault("kind", KIND[res])
        obj.setdefault("apiVersion", API_VERSION[res])
        obj = canonical(obj, res)
        m = meta(obj)
        if res in NAMESPACED:
            m.setdefault("namespace", "default")
        m.setdefault("uid", str(uuid.uuid4()))
        m.setdefault("creationTimestamp", now_ts())
        if not m.get("resourceVersion"):
            m["resourceVersion"] = str(self.rv)
        obj["metadata"] = ordered(m, META_ORDER)
        self.objs[res][obj_key(res, obj)] = obj

    def get(self, res, key):
        return self.objs[res].get(key)

    def commit(self, res, typ, obj=None, prev=None):
        """Store a new version (ADDED/MODIFIED) or delete (DELETED: obj ignored)."""
        self.rv += 1
        if typ == DELETED:
            key = obj_key(res, prev)
            obj = copy.deepcopy(prev)
            meta(obj)["resourceVersion"] = str(self.rv)
            self.objs[res].pop(key, None)
        else:
            meta(obj)["resourceVersion"] = str(self.rv)
            obj = canonical(obj, res)
            key = obj_key(res, obj)
            self.objs[res][key] = obj
        self.events.append(Event(self.rv, typ, res, key, obj, prev))
        self.event_rvs.append(self.rv)
        self._trim(self.window)
        self.cond.notify_all()
        return obj

    def _trim(self, keep):
        drop = len(self.events) - keep
        if drop > 0:
            self.compacted_rv = self.events[drop - 1].rv
            del self.events[:drop]
            del self.event_rvs[:drop]

    def compact(self, keep):
        keep = max(0, keep)
        if keep == 0:
            self.compacted_rv = self.rv
            self.events.clear()
            self.event_rvs.clear()
        else:
            self._trim(keep)
        self.cond.notify_all()

    def events_after(self, rv):
        i = bisect.bisect_right(self.event_rvs, rv)
        return self.events[i:]

    def state_at(self, res, rv):
        """The objects of res as they were at rv (needs rv >= compacted_rv)."""
        st = dict(self.objs[res])
        if rv >= self.rv:
            return st
        for ev in reversed(self.events_after(rv)):
            if ev.res != res:
                continue
            if ev.type == ADDED:
                st.pop(ev.key, None)
            else:
                st[ev.key] = ev.prev
        return st

    def add_watch(self, res, path, query, client):
        self._wid += 1
        w = WatchInfo(self._wid, res, path, query, client)
        self.watches[w.id] = w
        self.cond.notify_all()
        return w

    def remove_watch(self, w):
        self.watches.pop(w.id, None)
        self.cond.notify_all()


# --------------------------------------------------------------------------
# Pod/node admission and defaulting (the parts the extender can observe)
# --------------------------------------------------------------------------

DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]
KNOWN_PRIORITY = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}


def _image_pull_policy(image: str) -> str:
    name = (image or "").split("@")[0]
    last = name.rsplit("/", 1)[-1]
    if "@" in (image or ""):
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _qos(spec) -> str:
    conts = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    any_set, guaranteed = False, True
    for c in conts:
        r = c.get("resources") or {}
        req, lim = r.get("requests") or {}, r.get("limits") or {}
        for res in ("cpu", "memory"):
            if res in req or res in lim:
                any_set = True
            if res not in lim or req.get(res, lim.get(res)) != lim.get(res):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed and conts else "Burstable"


def default_pod(pod):
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise st_bad_request("spec must be an object")
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            res = c.setdefault("resources", {})
            lim = res.get("limits") or {}
            if lim:
                req = res.setdefault("requests", {})
                for k, v in lim.items():
                    req.setdefault(k, v)   # requests default to limits (e.g. nvidia.com/gpu)
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("imagePullPolicy", _image_pull_policy(c.get("image", "")))
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    tol = spec.setdefault("tolerations", [])
    for d in DEFAULT_TOLERATIONS:
        if not any(isinstance(t, dict) and t.get("key") == d["key"] and t.get("effect") in (None, "", "NoExecute")
                   for t in tol):
            tol.append(dict(d))
    if "priority" not in spec:
        spec["priority"] = KNOWN_PRIORITY.get(spec.get("priorityClassName", ""), 0)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    pod["status"] = {"phase": "Pending", "qosClass": _qos(spec)}


def default_pdb(pdb):
    """policy/v1 PodDisruptionBudget create strategy: generation 1, status reset (the disruption
    controller fills it in; here tests do, through /status), and ValidatePodDisruptionBudgetSpec's
    one rule the tests can meet: minAvailable and maxUnavailable are exclusive."""
    spec = pdb.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise st_bad_request("spec must be an object")
    name = meta(pdb).get("name", "")
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        raise st_invalid("PodDisruptionBudget", name, [(
            "FieldValueInvalid", "spec",
            f'Invalid value: {json.dumps(spec, separators=(",", ":"))}: minAvailable and maxUnavailable '
            "cannot be both set")])
    sel = spec.get("selector")
    if sel is not None and not isinstance(sel, dict):
        raise st_bad_request("spec.selector must be an object")
    meta(pdb)["generation"] = 1
    pdb["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}


def validate_new(res, obj, ns):
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    if ns is not None:
        if m.get("namespace") and m["namespace"] != ns:
            raise st_bad_request("the namespace of the provided object does not match the namespace sent on "
                                 "the request")
        m["namespace"] = ns
    if not m.get("name"):
        if m.get("generateName"):
            m["name"] = m["generateName"] + uuid.uuid4().hex[:5]
        else:
            raise st_invalid(KIND[res], "", [("FieldValueRequired", "metadata.name",
                                               "Required value: name or generateName is required")])
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", m["name"]) or len(m["name"]) > 253:
        raise st_invalid(KIND[res], m["name"], [(
            "FieldValueInvalid", "metadata.name",
            f'Invalid value: "{m["name"]}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")])
    if res == PODS:
        conts = (obj.get("spec") or {}).get("containers")
        if not isinstance(conts, list) or not conts:
            raise st_invalid("Pod", m["name"], [("FieldValueRequired", "spec.containers", "Required value")])


POD_SPEC_MUTABLE_MSG = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
    "existing tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
    "previously negative)")


def _spec_fingerprint(spec):
    s = copy.deepcopy(spec or {})
    for k in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        s.pop(k, None)
    for key in ("containers", "initContainers"):
        for c in s.get(key) or []:
            if isinstance(c, dict):
                c.pop("image", None)
    return s


# --------------------------------------------------------------------------
# Configuration, requests, faults
# --------------------------------------------------------------------------


class Config:
    def __init__(self, a):
        self.bookmark_interval = a.bookmark_interval
        self.idle_timeout = a.idle_timeout
        self.go_chunking = a.go_chunking
        self.anonymous_forbidden = a.anonymous_forbidden
        self.node_taint_admission = not a.no_node_taint_admission

    def as_dict(self, store):
        return {"bookmark_interval": self.bookmark_interval, "idle_timeout": self.idle_timeout,
                "go_chunking": self.go_chunking, "anonymous_forbidden": self.anonymous_forbidden,
                "node_taint_admission": self.node_taint_admission, "event_window": store.window}


class Fault:
    _next = 0

    def __init__(self, d):
        if not isinstance(d, dict):
            raise ValueError("fault must be an object")
        Fault._next += 1
        self.id = Fault._next
        self.match = d.get("match", ".*")
        self.rx = re.compile(self.match)
        self.qrx = re.compile(d["query"]) if d.get("query") else None
        self.action = d.get("action", "status")
        if self.action not in ("stall", "status", "drop", "close-after-headers", "truncate-body"):
            raise ValueError(f"unknown action {self.action!r}")
        self.seconds = float(d.get("seconds", 3600))
        self.status = int(d.get("status", 500))
        self.body = d.get("body")
        self.headers = d.get("headers") or {}
        self.rst = bool(d.get("rst", False))
        self.times = int(d.get("times", 1))
        self.remaining = self.times
        self.hits = 0
        self.release = threading.Event()

    def as_dict(self):
        return {"id": self.id, "match": self.match, "query": self.qrx.pattern if self.qrx else None,
                "action": self.action, "seconds": self.seconds, "status": self.status, "body": self.body,
                "headers": self.headers, "rst": self.rst, "times": self.times, "remaining": self.remaining,
                "hits": self.hits}


class ClientGone(Exception):
    pass


class StopHandling(Exception):
    """The response (or deliberate non-response) is complete."""


class Route:
    def __init__(self, res, ns, name, sub, watch_prefix, group=""):
        self.res, self.ns, self.name, self.sub, self.watch_prefix = res, ns, name, sub, watch_prefix
        self.group = group


def parse_route(path):
    segs = [unquote(s) for s in path.split("/")[1:]]
    if len(segs) >= 2 and segs[0] == "api" and segs[1] == "v1":
        group, rest = "", segs[2:]
    elif len(segs) >= 3 and segs[0] == "apis" and segs[1] == "policy" and segs[2] == "v1":
        group, rest = "policy", segs[3:]
    else:
        return None
    rt = _parse_rest(rest)
    if rt is None:
        return None
    rt.group = group
    # each resource lives in its own group: /api/v1/poddisruptionbudgets is as unknown as
    # /apis/policy/v1/pods
    if (group == "policy") != (rt.res == PDBS) or (group == "policy" and rt.res == "namespaces"):
        return None
    return rt


def _parse_rest(rest):
    watch_prefix = False
    if rest and rest[0] == "watch":
        watch_prefix = True
        rest = rest[1:]
    ns = None
    if len(rest) >= 2 and rest[0] == "namespaces":
        ns = rest[1]
        rest = rest[2:]
        if not rest:
            return Route("namespaces", None, ns, None, watch_prefix)
    if not rest or len(rest) > 3 or any(s == "" for s in rest):
        return None
    res, name = rest[0], rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if res == NODES and ns is not None:
        return None
    if res == PDBS and name is not None and ns is None:
        return None
    if res == "bindings" and (ns is None or name is not None):
        return None
    return Route(res, ns, name, sub, watch_prefix)


# --------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, addr, family, cfg, store, ssl_ctx, tokens, logf, client_ca):
        self.address_family = family
        self.cfg = cfg
        self.store = store
        self.ssl_ctx = ssl_ctx
        self.client_ca = client_ca
        self.tokens = set(tokens)
        self.auth_lock = threading.Lock()
        self.logf = logf
        self.log_lock = threading.Lock()
        self.records = []
        self.rec_id = 0
        self.rec_cond = threading.Condition()
        self.faults: list[Fault] = []
        self.fault_lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(addr, Handler)

    def server_bind(self):
        # HTTPServer.server_bind() does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    # TLS handshake happens in the connection's own thread, never in accept().
    def finish_request(self, request, client_address):
        conn = request
        if self.ssl_ctx is not None:
            try:
                request.settimeout(10)
                conn = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.log(f"tls handshake failed from {client_address[0]}:{client_address[1]}: {e}")
                _close_quietly(request)
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            if conn is not request:
                _close_quietly(conn)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, ClientGone)):
            return
        self.log("unhandled error: " + "".join(traceback.format_exception(exc)).rstrip())

    def log(self, line):
        with self.log_lock:
            try:
                ts = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                self.logf.write(f"{ts} {line}\n")
                self.logf.flush()
            except (OSError, ValueError):
                pass

    def record(self, rec):
        with self.rec_cond:
            self.rec_id += 1
            rec["id"] = self.rec_id
            self.records.append(rec)
            if len(self.records) > MAX_RECORDS:
                del self.records[: len(self.records) - MAX_RECORDS]
            self.rec_cond.notify_all()

    def take_fault(self, method, path, query):
        subject = f"{method} {path}"
        with self.fault_lock:
            for f in self.faults:
                if f.remaining == 0:
                    continue
                if not f.rx.search(subject):
                    continue
                if f.qrx and not f.qrx.search(query):
                    continue
                f.hits += 1
                if f.remaining > 0:
                    f.remaining -= 1
                return f
        return None


def _close_quietly(sock):
    try:
        sock.close()
    except OSError:
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver/v1.26.1"
    sys_version = ""

    # ---- plumbing -------------------------------------------------------

    def setup(self):
        self.timeout = self.server.cfg.idle_timeout or None
        # The real server (Go) sets TCP_NODELAY. Without it, headers and body go out as two
        # segments and a keep-alive client waits ~40 ms for its delayed ACK on every reply.
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (ClientGone, ConnectionError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler API
        pass

    def log_error(self, format, *args):  # noqa: A002
        self.server.log(f"{self.client_address[0]}:{self.client_address[1]} " + (format % args))

    def send_response(self, code, message=None):
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _write(self, data: bytes):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ClientGone() from e
        self._nbytes += len(data)

    def _abort(self, rst=False):
        """Close the socket without (finishing) an answer."""
        self.close_connection = True
        sock = self.connection
        try:
            if rst:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def _peer_closed(self) -> bool:
        sock = self.connection
        try:
            r, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not r:
            return False
        old = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            if isinstance(sock, ssl.SSLSocket):
                data = sock.recv(1)
            else:
                data = sock.recv(1, socket.MSG_PEEK)
            return data == b""
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            return False
        except (OSError, ssl.SSLError, ValueError):
            return True
        finally:
            try:
                sock.settimeout(old)
            except OSError:
                pass

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ClientGone()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ClientGone()
                parts.append(chunk)
                self.rfile.readline(3)
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        if n <= 0:
            return b""
        body = self.rfile.read(n)
        if len(body) < n:
            raise ClientGone()
        return body

    # ---- responses ------------------------------------------------------

    def _encode(self, obj) -> bytes:
        if self._pretty:
            return go_json_pretty(obj)
        return go_json(obj) + b"\n"

    def _reply(self, code, body, ctype="application/json", headers=None):
        if not isinstance(body, (bytes, bytearray)):
            body = self._encode(body)
        body = bytes(body)
        hdrs = [("Audit-Id", str(uuid.uuid4())), ("Cache-Control", "no-cache, private"),
                ("Content-Type", ctype)]
        if self._authed:
            hdrs += [("X-Kubernetes-Pf-Flowschema-Uid", FLOWSCHEMA_UID),
                     ("X-Kubernetes-Pf-Prioritylevel-Uid", PRIORITYLEVEL_UID)]
        accept_enc = (self.headers.get("Accept-Encoding") or "").lower()
        if len(body) >= GZIP_THRESHOLD and "gzip" in accept_enc and not self._is_admin:
            body = gzip.compress(body)
            hdrs += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        for k, v in (headers or []):
            hdrs.append((k, v))
        chunked = (self.server.cfg.go_chunking and not self._is_admin and len(body) > GO_CHUNK_THRESHOLD
                   and self.request_version == "HTTP/1.1")
        self._set_status(code)
        self.send_response(code)
        for k, v in hdrs:
            self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
        except (OSError, ssl.SSLError) as e:
            raise ClientGone() from e
        if self._fault_after_headers:
            self._finish_fault_after_headers(body)
        if chunked:
            self._write(b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        else:
            self._write(body)
        raise StopHandling()

    def _finish_fault_after_headers(self, body):
        mode, rst = self._fault_after_headers
        if mode == "truncate-body" and body:
            try:
                self.wfile.write(body[: max(1, len(body) // 2)])
            except OSError:
                pass
        self._abort(rst)
        raise StopHandling()

    def _set_status(self, code):
        """The status, on the request's record too before a byte of the reply goes out: a client
        that reads /_admin/requests as soon as it has its answer must find it there."""
        self._status = code
        if self._rec is not None:
            self._rec["status"] = code

    def _reply_error(self, e: ApiError):
        self._reply(e.code, e.body, e.ctype, e.headers)

    # ---- dispatch -------------------------------------------------------

    def _handle(self):
        self._t0 = time.monotonic()
        self._status = None
        self._rec = None
        self._nbytes = 0
        self._authed = False
        self._fault_after_headers = None
        self._is_admin = False
        self._user = None
        url = urlsplit(self.path)
        self._rpath, self._query = url.path, url.query
        self._params = parse_qs(url.query, keep_blank_values=True)
        self._pretty = (parse_bool(self._param("pretty") or "")
                        or (self.headers.get("User-Agent") or "").startswith("curl"))
        rec = None
        try:
            try:
                self._body = self._read_body()
            except (ValueError, ClientGone):
                self.close_connection = True
                if isinstance(sys.exc_info()[1], ValueError):
                    self._reply_error(st_bad_request("invalid request body framing"))
                return
            if self._rpath == "/_admin" or self._rpath.startswith("/_admin/"):
                self._is_admin = True
                self._pretty = False
                self._admin()
                return
            rec = {"time": time.time(), "method": self.command, "path": self._rpath, "query": self._query,
                   "args": {k: v[0] if len(v) == 1 else v for k, v in self._params.items()},
                   "headers": _headers_dict(self.headers), "body": self._body.decode("utf-8", "replace"),
                   "tls": isinstance(self.connection, ssl.SSLSocket), "status": None, "fault": None,
                   "user": None}
            self._rec = rec
            self.server.record(rec)
            fault = self.server.take_fault(self.command, self._rpath, self._query)
            if fault is not None:
                rec["fault"] = fault.action
                self._apply_fault(fault)
            self._api()
        except StopHandling:
            pass
        except ApiError as e:
            try:
                self._reply_error(e)
            except StopHandling:
                pass
        except ClientGone:
            self.close_connection = True
        except Exception:  # a bug in the fake: answer 500 and keep serving
            self.server.log("handler error: " + traceback.format_exc().rstrip())
            if self._status is None:
                try:
                    self._reply_error(st_internal("fake apiserver bug, see its log"))
                except (StopHandling, ClientGone):
                    pass
            self.close_connection = True
        finally:
            if rec is not None:
                rec["status"] = self._status
                rec["user"] = self._user
            if not self._is_admin or self._rpath not in ("/_admin/health",):
                ms = (time.monotonic() - self._t0) * 1000
                self.server.log(f'{self.client_address[0]}:{self.client_address[1]} "{self.command} '
                                f'{self.path}" {self._status if self._status is not None else "-"} '
                                f"{self._nbytes}B {ms:.1f}ms")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _param(self, name):
        v = self._params.get(name)
        return v[0] if v else None

    def _apply_fault(self, f: Fault):
        if f.action == "stall":
            deadline = time.monotonic() + f.seconds
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or f.release.is_set() or self.server.stopping.is_set():
                    break
                f.release.wait(min(left, 0.1))
                if self._peer_closed():
                    break
            if self.server.stopping.is_set():
                self._abort()
                raise StopHandling()
            # Whatever ended the stall, a request whose client has left is not handled: a
            # release (DELETE /_admin/fault) that came before the next look at the socket
            # must not let it change the store after its client was told it failed.
            if self._peer_closed():
                self.close_connection = True
                raise StopHandling()
            return
        if f.action == "drop":
            self._abort(f.rst)
            raise StopHandling()
        if f.action in ("close-after-headers", "truncate-body"):
            self._fault_after_headers = (f.action, f.rst)
            return
        # status
        hdrs, ctype = [], None
        for k, v in f.headers.items():
            if k.lower() == "content-type":
                ctype = v
            else:
                hdrs.append((k, str(v)))
        body = f.body
        if body is None:
            if f.status == 429:
                body = b"Too many requests, please try again later.\n"
                ctype = ctype or "text/plain; charset=utf-8"
                if not any(k.lower() == "retry-after" for k, _ in hdrs):
                    hdrs.append(("Retry-After", "1"))
            else:
                body = generic_status_for(f.status)
        elif isinstance(body, str):
            body = body.encode()
            ctype = ctype or "text/plain; charset=utf-8"
        ctype = ctype or "application/json"
        self._reply(f.status, body, ctype, hdrs)

    # ---- authentication ---------------------------------------------------

    def _authenticate(self):
        """Returns the user name, None for 'no credentials', raises 401 for bad ones."""
        srv = self.server
        if srv.client_ca and isinstance(self.connection, ssl.SSLSocket):
            try:
                cert = self.connection.getpeercert()
            except (ValueError, ssl.SSLError):
                cert = None
            if cert:
                cn = ""
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            cn = v
                return cn or "x509-user"
        with srv.auth_lock:
            tokens = set(srv.tokens)
        if not tokens and not srv.client_ca:
            return "anonymous-allowed"
        authz = self.headers.get("Authorization")
        if authz:
            parts = authz.split()
            if len(parts) == 2 and parts[0].lower() == "bearer":
                if parts[1] in tokens:
                    return "token-user"
                raise st_unauthorized()
            if not srv.cfg.anonymous_forbidden:
                raise st_unauthorized()
            return None
        if srv.cfg.anonymous_forbidden:
            return None
        raise st_unauthorized()

    # ---- the Kubernetes API -----------------------------------------------

    def _api(self):
        path = self._rpath
        if path in ("/healthz", "/livez", "/readyz"):
            if self.headers.get("Authorization"):
                self._user = self._authenticate()
            self._reply(200, b"ok", "text/plain; charset=utf-8",
                        [("X-Content-Type-Options", "nosniff")])
        user = self._authenticate()
        rt = parse_route(path)
        method = self.command
        if user is None:  # anonymous and --anonymous-forbidden
            if rt is None or rt.res not in (NODES, PODS, PDBS, "bindings"):
                raise st_forbidden(None, None, method.lower(), None, path=path)
            raise st_forbidden(rt.res if rt.res != "bindings" else "bindings", rt.name,
                               self._verb(rt), rt.ns, subresource=rt.sub)
        self._user = user
        self._authed = True
        if path == "/version":
            self._reply(200, VERSION_INFO)
        if path == "/api":
            self._reply(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
        if path == "/apis/policy/v1":
            self._reply(200, POLICY_V1_RESOURCES)
        if rt is None:
            if path.startswith("/api/") or path.startswith("/apis/"):
                raise st_not_found_generic()
            self._reply(404, b"404 page not found\n", "text/plain; charset=utf-8",
                        [("X-Content-Type-Options", "nosniff")])
        if rt.res == "events":
            if method == "POST":
                return self._create_event(rt)
            raise st_method_not_allowed()
        if rt.res == "bindings":
            if method != "POST":
                raise st_method_not_allowed()
            return self._binding(rt, legacy=True)
        if rt.res not in RESOURCES:
            raise st_not_found_generic()
        if rt.name is None:
            if method == "GET":
                if rt.watch_prefix or parse_bool(self._param("watch") or ""):
                    return self._watch(rt)
                return self._list(rt)
            if method == "POST" and (rt.res == NODES or rt.ns):
                return self._create(rt)
            raise st_method_not_allowed()
        if rt.watch_prefix:
            raise st_not_found_generic()
        if rt.res in NAMESPACED and rt.ns is None:
            raise st_not_found_generic()
        if rt.sub is None:
            if method == "GET":
                return self._get(rt)
            if method == "PATCH":
                return self._patch(rt)
            if method == "PUT":
                return self._put(rt)
            if method == "DELETE":
                return self._delete(rt)
            raise st_method_not_allowed()
        if rt.sub == "status":
            if method == "GET":
                return self._get(rt)
            if method == "PATCH":
                return self._patch(rt)
            if method == "PUT":
                return self._put(rt)
            raise st_method_not_allowed()
        if rt.sub == "binding" and rt.res == PODS:
            if method == "POST":
                return self._binding(rt)
            raise st_method_not_allowed()
        raise st_not_found_generic()

    def _verb(self, rt):
        m = self.command
        if m == "GET":
            if rt.name is None:
                return "watch" if (rt.watch_prefix or parse_bool(self._param("watch") or "")) else "list"
            return "get"
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m, m.lower())

    def _key(self, rt):
        return f"{rt.ns}/{rt.name}" if rt.res in NAMESPACED else rt.name

    def _json_body(self, accepted=None):
        ctype = (self.headers.get("Content-Type") or "application/octet-stream").split(";")[0].strip().lower()
        if accepted is None and ctype not in ("application/json", "application/yaml"):
            raise st_unsupported_media(BODY_TYPES)
        try:
            return json.loads(self._body.decode("utf-8")) if self._body else None
        except (ValueError, UnicodeError) as e:
            raise st_bad_request(f"couldn't get version/kind; json parse error: {e}")

    def _obj_body(self, res):
        obj = self._json_body()
        if not isinstance(obj, dict):
            raise st_bad_request("the object provided is unrecognized (must be of type "
                                 f"{KIND[res]}): couldn't get version/kind; json parse error")
        if obj.get("kind") not in (None, "", KIND[res]):
            raise st_bad_request(f'the object provided is unrecognized (must be of type {KIND[res]}): '
                                 f'no kind "{obj.get("kind")}" is registered for the version '
                                 f'"{API_VERSION[res]}"')
        return obj

    def _get(self, rt):
        st = self.server.store
        with st.lock:
            obj = st.get(rt.res, self._key(rt))
        if obj is None:
            raise st_not_found(rt.res, rt.name)
        self._reply(200, obj)

    def _matcher(self, rt):
        lsel = parse_label_selector(self._param("labelSelector") or "")
        fsel = parse_field_selector(self._param("fieldSelector") or "", rt.res)
        ns = rt.ns if rt.res in NAMESPACED else None

        def match(obj):
            if obj is None:
                return False
            m = obj.get("metadata") or {}
            if ns is not None and m.get("namespace") != ns:
                return False
            return label_match(lsel, m.get("labels")) and field_match(fsel, rt.res, obj)

        return match, bool(lsel or fsel)

    def _list(self, rt):
        match, has_sel = self._matcher(rt)
        st = self.server.store
        try:
            limit = int(self._param("limit") or 0)
        except ValueError:
            raise st_bad_request(f'limit: Invalid value: "{self._param("limit")}"')
        cont = self._param("continue") or ""
        rvp = self._param("resourceVersion") or ""
        prefix = f"{rt.ns}/" if (rt.res in NAMESPACED and rt.ns) else ""
        start = ""
        with st.lock:
            if cont:
                if rvp not in ("", "0"):
                    raise st_bad_request("specifying resource version is not allowed when using continue")
                start, crv = decode_continue(cont)
                if crv == -1 or crv > st.rv:
                    snap = st.rv
                elif crv < st.compacted_rv:
                    raise ApiError(410, status_body(410, "Expired", CONTINUE_EXPIRED_MSG,
                                                    metadata={"continue": encode_continue(start[:-1], -1)}))
                else:
                    snap = crv
            else:
                if rvp == "0":
                    limit = 0  # served from the watch cache: limit is ignored, like 1.26
                elif rvp:
                    try:
                        want = int(rvp)
                    except ValueError:
                        raise st_bad_request(f'resourceVersion: Invalid value: "{rvp}": strconv.ParseUint: '
                                             f'parsing "{rvp}": invalid syntax')
                    deadline = time.monotonic() + 3
                    while st.rv < want and time.monotonic() < deadline:
                        st.cond.wait(deadline - time.monotonic())
                    if st.rv < want:
                        raise ApiError(504, status_body(
                            504, "Timeout", f"Timeout: Too large resource version: {want}, current: {st.rv}",
                            {"causes": [{"reason": "ResourceVersionTooLarge",
                                         "message": "Too large resource version"}], "retryAfterSeconds": 1}))
                snap = st.rv
            state = st.state_at(rt.res, snap)
        keys = sorted(k for k in state if k.startswith(prefix) and k[len(prefix):] >= start)
        items = [state[k] for k in keys if match(state[k])]
        lmeta = {"resourceVersion": str(snap)}
        if limit > 0 and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            last_key = obj_key(rt.res, items[-1])[len(prefix):]
            lmeta["continue"] = encode_continue(last_key, snap)
            if not has_sel:
                lmeta["remainingItemCount"] = rest
        self._reply(200, {"kind": LIST_KIND[rt.res], "apiVersion": API_VERSION[rt.res], "metadata": lmeta,
                          "items": [strip_type(o) for o in items]})

    # ---- watch ------------------------------------------------------------

    def _bookmark(self, res, rv):
        m = {"resourceVersion": str(rv), "creationTimestamp": None}
        if res == PODS:
            obj = {"kind": "Pod", "apiVersion": "v1", "metadata": m, "spec": {"containers": None}, "status": {}}
        elif res == PDBS:
            # a zero policy/v1 PodDisruptionBudget: the status counters have no omitempty
            obj = {"kind": "PodDisruptionBudget", "apiVersion": "policy/v1", "metadata": m, "spec": {},
                   "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                              "expectedPods": 0}}
        else:
            obj = {"kind": "Node", "apiVersion": "v1", "metadata": m, "spec": {}, "status": {
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "",
                             "containerRuntimeVersion": "", "kubeletVersion": "", "kubeProxyVersion": "",
                             "operatingSystem": "", "architecture": ""}}}
        return {"type": "BOOKMARK", "object": obj}

    def _chunk(self, payload: bytes):
        if self._fault_after_headers:
            self._abort(self._fault_after_headers[1])
            raise StopHandling()
        self._write(b"%x\r\n" % len(payload) + payload + b"\r\n")

    def _watch(self, rt):
        match, _ = self._matcher(rt)
        st = self.server.store
        cfg = self.server.cfg
        rvp = self._param("resourceVersion") or ""
        bookmarks = parse_bool(self._param("allowWatchBookmarks") or "")
        tos = self._param("timeoutSeconds")
        try:
            deadline = time.monotonic() + int(tos) if tos else None
        except ValueError:
            raise st_bad_request(f'timeoutSeconds: Invalid value: "{tos}"')
        expired = None
        initial = []
        with st.lock:
            if rvp in ("", "0"):
                cursor = st.rv
                initial = [{"type": ADDED, "object": o} for _, o in sorted(st.objs[rt.res].items()) if match(o)]
            else:
                try:
                    cursor = int(rvp)
                    if cursor < 0:
                        raise ValueError(rvp)
                except ValueError:
                    raise st_bad_request(f'resourceVersion: Invalid value: "{rvp}": strconv.ParseUint: '
                                         f'parsing "{rvp}": invalid syntax')
                if cursor < st.compacted_rv:
                    expired = (cursor, st.compacted_rv)
            w = st.add_watch(rt.res, self._rpath, self._query, f"{self.client_address[0]}:{self.client_address[1]}")
        try:
            self._set_status(200)
            self.send_response(200)
            self.send_header("Audit-Id", str(uuid.uuid4()))
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Kubernetes-Pf-Flowschema-Uid", FLOWSCHEMA_UID)
            self.send_header("X-Kubernetes-Pf-Prioritylevel-Uid", PRIORITYLEVEL_UID)
            self.send_header("Transfer-Encoding", "chunked")
            try:
                self.end_headers()
            except (OSError, ssl.SSLError) as e:
                raise ClientGone() from e
            if self._fault_after_headers:
                self._abort(self._fault_after_headers[1])
                return
            if expired:
                self._send_too_old(*expired)
                return
            for ev in initial:
                self._chunk(go_json(ev) + b"\n")
                w.sent += 1
            next_bm = time.monotonic() + cfg.bookmark_interval
            while True:
                evs = []
                with st.cond:
                    if st.rv <= cursor and w.close_mode is None and not self.server.stopping.is_set():
                        now = time.monotonic()
                        wait = 0.5
                        if deadline is not None:
                            wait = min(wait, max(0.0, deadline - now))
                        if bookmarks:
                            wait = min(wait, max(0.0, next_bm - now))
                        if wait > 0:
                            st.cond.wait(wait)
                    close_mode = w.close_mode or ("end" if self.server.stopping.is_set() else None)
                    if st.rv > cursor:
                        if cursor < st.compacted_rv:
                            expired = (cursor, st.compacted_rv)
                        else:
                            evs = list(st.events_after(cursor))
                            cursor = st.rv
                if close_mode == "drop":
                    self._abort(rst=False)
                    return
                if close_mode == "rst":
                    self._abort(rst=True)
                    return
                if close_mode == "end":
                    self._write(b"0\r\n\r\n")
                    self.close_connection = True
                    return
                if expired:
                    self._send_too_old(*expired)
                    return
                for ev in evs:
                    out = self._convert(ev, rt.res, match)
                    if out is not None:
                        self._chunk(go_json(out) + b"\n")
                        w.sent += 1
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    self._write(b"0\r\n\r\n")
                    return
                if bookmarks and now >= next_bm:
                    self._chunk(go_json(self._bookmark(rt.res, cursor)) + b"\n")
                    next_bm = now + max(0.01, cfg.bookmark_interval)
                elif not evs and self._peer_closed():
                    self.close_connection = True
                    return
        finally:
            with st.lock:
                st.remove_watch(w)
            raise StopHandling()

    def _send_too_old(self, rv, oldest):
        err = {"type": "ERROR", "object": status_body(410, "Expired", f"too old resource version: {rv} ({oldest})")}
        self._chunk(go_json(err) + b"\n")
        self._write(b"0\r\n\r\n")

    @staticmethod
    def _convert(ev, res, match):
        if ev.res != res:
            return None
        cur = ev.type != DELETED and match(ev.obj)
        old = ev.prev is not None and match(ev.prev)
        if cur and not old:
            return {"type": ADDED, "object": ev.obj}
        if cur and old:
            return {"type": MODIFIED, "object": ev.obj}
        if old:
            if ev.type == DELETED:
                return {"type": DELETED, "object": ev.obj}
            o = copy.deepcopy(ev.prev)
            meta(o)["resourceVersion"] = str(ev.rv)
            return {"type": DELETED, "object": o}
        return None

    # ---- writes -------------------------------------------------------------

    def _create(self, rt):
        obj = self._obj_body(rt.res)
        validate_new(rt.res, obj, rt.ns if rt.res in NAMESPACED else None)
        obj["kind"], obj["apiVersion"] = KIND[rt.res], API_VERSION[rt.res]
        m = meta(obj)
        for k in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
                  "creationTimestamp"):
            m.pop(k, None)
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now_ts()
        if rt.res == PODS:
            default_pod(obj)
        elif rt.res == PDBS:
            default_pdb(obj)
        else:
            obj.setdefault("spec", {})
            if self.server.cfg.node_taint_admission:
                taints = obj["spec"].setdefault("taints", [])
                if not any(t.get("key") == "node.kubernetes.io/not-ready" and t.get("effect") == "NoSchedule"
                           for t in taints if isinstance(t, dict)):
                    taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
            obj.setdefault("status", {})
        st = self.server.store
        with st.lock:
            if st.get(rt.res, obj_key(rt.res, obj)) is not None:
                raise st_already_exists(rt.res, m["name"])
            out = st.commit(rt.res, ADDED, obj)
        self._reply(201, out)

    def _create_event(self, rt):
        obj = self._json_body()
        if not isinstance(obj, dict):
            raise st_bad_request("the object provided is unrecognized (must be of type Event)")
        m = meta(obj)
        m.setdefault("namespace", rt.ns)
        if not m.get("name"):
            m["name"] = (m.get("generateName") or "event.") + uuid.uuid4().hex[:16]
        m["uid"] = str(uuid.uuid4())
        with self.server.store.lock:
            m["resourceVersion"] = str(self.server.store.rv)
        m["creationTimestamp"] = now_ts()
        self._reply(201, obj)

    def _binding(self, rt, legacy=False):
        b = self._json_body()
        if not isinstance(b, dict) or b.get("kind") not in (None, "", "Binding"):
            raise st_bad_request(f"not a Binding object: {b!r}"[:300])
        bm = b.get("metadata") if isinstance(b.get("metadata"), dict) else {}
        if bm.get("namespace") and bm["namespace"] != rt.ns:
            raise st_bad_request("the namespace of the provided object does not match the namespace sent on "
                                 "the request")
        name = bm.get("name", "")
        if legacy:
            if not name:
                raise st_invalid("Binding", "", [("FieldValueRequired", "metadata.name",
                                                  "Required value: name or generateName is required")])
        elif name != rt.name:
            raise st_bad_request("name in URL does not match name in Binding object")
        target = b.get("target") if isinstance(b.get("target"), dict) else {}
        errs = []
        tk = target.get("kind", "")
        if tk and tk != "Node":
            errs.append(f'target.kind: Unsupported value: "{tk}": supported values: "Node", "<empty>"')
        if not target.get("name"):
            errs.append("target.name: Required value")
        if errs:  # ValidatePodBinding returns an aggregate: kube-apiserver answers 500
            msg = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
            raise ApiError(500, status_body(500, None, msg))
        node = target["name"]
        annotations = bm.get("annotations") if isinstance(bm.get("annotations"), dict) else {}
        # metadata.uid / resourceVersion of the Binding are wiped (1.26): no preconditions.
        st = self.server.store
        with st.lock:
            pod = st.get(PODS, f"{rt.ns}/{name}")
            if pod is None:
                raise st_not_found(PODS, name)
            pm = pod.get("metadata") or {}
            spec = pod.get("spec") or {}
            if pm.get("deletionTimestamp"):
                raise st_conflict("pods/binding", name, f"pod {name} is being deleted, cannot be assigned to a host")
            if spec.get("nodeName"):
                raise st_conflict("pods/binding", name,
                                  f'pod {name} is already assigned to node "{spec["nodeName"]}"')
            if spec.get("schedulingGates"):
                raise st_conflict("pods/binding", name, f"pod {name} has non-empty .spec.schedulingGates")
            # A copy of the path that changes, sharing the rest with the stored version: nothing
            # here mutates a stored object in place (every writer copies first), and a deep copy
            # of the whole pod, under this lock, held up the watches that stream each bind
            # (bench/README.md, "Binds").
            new = dict(pod)
            new["spec"] = dict(spec)
            new["spec"]["nodeName"] = node
            new["metadata"] = nm = dict(pm)
            if annotations:
                ann = dict(nm.get("annotations") or {})
                ann.update(annotations)
                nm["annotations"] = ann
            new["status"] = status = dict(pod.get("status") or {})
            update_pod_condition(status, {"type": "PodScheduled", "status": "True"})
            st.commit(PODS, MODIFIED, new, pod)
        self._reply(201, status_body(201, success=True))

    def _prepare_update(self, rt, old, new):
        """Common checks for PUT/PATCH. Returns the object to store."""
        res = rt.res
        om, nm = old.get("metadata") or {}, new.get("metadata")
        if not isinstance(nm, dict):
            raise st_bad_request("metadata must be an object")
        if nm.get("name") != om.get("name"):
            raise st_bad_request(f'the name of the object ({nm.get("name")}) does not match the name on the URL '
                                 f'({om.get("name")})')
        if res in NAMESPACED and nm.get("namespace", om.get("namespace")) != om.get("namespace"):
            raise st_bad_request(f'the namespace of the object ({nm.get("namespace")}) does not match the '
                                 f'namespace on the URL ({om.get("namespace")})')
        if nm.get("uid") not in (None, "", om.get("uid")):
            raise st_invalid(KIND[res], om.get("name"), [(
                "FieldValueInvalid", "metadata.uid", f'Invalid value: "{nm.get("uid")}": field is immutable')])
        rv = nm.get("resourceVersion")
        if rv not in (None, "") and rv != om.get("resourceVersion"):
            raise st_conflict(res, om.get("name"), "the object has been modified; please apply your changes to "
                                                   "the latest version and try again")
        new["kind"], new["apiVersion"] = KIND[res], API_VERSION[res]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace",
                  "generation"):
            if k in om:
                nm[k] = om[k]
            else:
                nm.pop(k, None)
        nm["resourceVersion"] = om.get("resourceVersion")
        if rt.sub == "status":
            if "spec" in old:
                new["spec"] = copy.deepcopy(old["spec"])
            else:
                new.pop("spec", None)
        else:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
            if res == PODS and _spec_fingerprint(new.get("spec")) != _spec_fingerprint(old.get("spec")):
                raise st_invalid("Pod", om.get("name"), [("FieldValueForbidden", "spec", POD_SPEC_MUTABLE_MSG)])
            if res == PDBS and new.get("spec") != old.get("spec"):
                if (new.get("spec") or {}).get("minAvailable") is not None and \
                        (new.get("spec") or {}).get("maxUnavailable") is not None:
                    raise st_invalid("PodDisruptionBudget", om.get("name"), [(
                        "FieldValueInvalid", "spec", "Invalid value: minAvailable and maxUnavailable cannot be "
                                                     "both set")])
                nm["generation"] = int(om.get("generation") or 1) + 1   # a spec change bumps it
        return canonical(new, res)

    def _store_update(self, rt, old, new):
        st = self.server.store
        if new == old:
            return old  # no-op update: no new resourceVersion, no event
        out = st.commit(rt.res, MODIFIED, new, old)
        nm = out.get("metadata") or {}
        if nm.get("deletionTimestamp") and not nm.get("finalizers") and nm.get("deletionGracePeriodSeconds") == 0:
            st.commit(rt.res, DELETED, prev=out)
        return out

    def _patch(self, rt):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in PATCH_TYPES or ctype == "application/apply-patch+yaml":
            raise st_unsupported_media(PATCH_TYPES)
        try:
            patch = json.loads(self._body.decode("utf-8")) if self._body else None
        except (ValueError, UnicodeError) as e:
            raise st_bad_request(f"error decoding patch: {e}")
        if patch is None:
            raise st_bad_request("the body of the request was empty")
        st = self.server.store
        with st.lock:
            old = st.get(rt.res, self._key(rt))
            if old is None:
                raise st_not_found(rt.res, rt.name)
            if ctype == "application/json-patch+json":
                try:
                    new = json_patch(old, patch)
                except JsonPatchError as e:
                    raise ApiError(422, status_body(
                        422, "Invalid", "the server rejected our request due to an error in our request",
                        {"causes": [{"reason": "UnexpectedServerResponse", "message": str(e)}]}))
            else:
                if not isinstance(patch, dict):
                    raise st_bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
                if ctype == "application/merge-patch+json":
                    new = merge_patch(old, patch)
                else:
                    new = strategic_merge_patch(old, patch)
            if not isinstance(new, dict):
                raise st_bad_request("patched object is not an object")
            # a resourceVersion in the patch is a precondition
            prv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
            if prv not in (None, "") and prv != (old.get("metadata") or {}).get("resourceVersion"):
                raise st_conflict(rt.res, rt.name, "the object has been modified; please apply your changes to "
                                                   "the latest version and try again")
            if isinstance(new.get("metadata"), dict):
                new["metadata"]["resourceVersion"] = (old.get("metadata") or {}).get("resourceVersion")
            new = self._prepare_update(rt, old, new)
            out = self._store_update(rt, old, new)
        self._reply(200, out)

    def _put(self, rt):
        new = self._obj_body(rt.res)
        st = self.server.store
        with st.lock:
            old = st.get(rt.res, self._key(rt))
            if old is None:
                raise st_not_found(rt.res, rt.name)
            new = self._prepare_update(rt, old, copy.deepcopy(new))
            out = self._store_update(rt, old, new)
        self._reply(200, out)

    def _delete(self, rt):
        grace = self._param("gracePeriodSeconds")
        opts = {}
        if self._body:
            try:
                opts = json.loads(self._body.decode("utf-8")) or {}
            except (ValueError, UnicodeError) as e:
                raise st_bad_request(f"couldn't get version/kind; json parse error: {e}")
            if not isinstance(opts, dict):
                raise st_bad_request("DeleteOptions must be an object")
        if grace is None and opts.get("gracePeriodSeconds") is not None:
            grace = opts.get("gracePeriodSeconds")
        try:
            grace = int(grace) if grace not in (None, "") else None
        except (TypeError, ValueError):
            raise st_bad_request(f'gracePeriodSeconds: Invalid value: "{grace}"')
        pre = opts.get("preconditions") or {}
        st = self.server.store
        with st.lock:
            obj = st.get(rt.res, self._key(rt))
            if obj is None:
                raise st_not_found(rt.res, rt.name)
            m = obj.get("metadata") or {}
            if pre.get("uid") and pre["uid"] != m.get("uid"):
                raise st_conflict(KIND[rt.res], rt.name, f'the UID in the precondition ({pre["uid"]}) does not '
                                  f'match the UID in record ({m.get("uid")}). The object might have been deleted '
                                  "and then recreated")
            if pre.get("resourceVersion") and pre["resourceVersion"] != m.get("resourceVersion"):
                raise st_conflict(KIND[rt.res], rt.name, "the ResourceVersion in the precondition "
                                  f'({pre["resourceVersion"]}) does not match the ResourceVersion in record '
                                  f'({m.get("resourceVersion")}). The object might have been modified')
            if rt.res in (NODES, PDBS):   # no graceful deletion: gone at once, answered with a Status
                st.commit(rt.res, DELETED, prev=obj)
                out = status_body(0, success=True, details={**_details(rt.res, rt.name), "uid": m.get("uid")})
            else:
                out = pod_delete(st, obj, grace)
        self._reply(200, out)


def update_pod_condition(status, cond):
    """podutil.UpdatePodCondition."""
    new = {"type": cond["type"], "status": cond["status"], "lastProbeTime": None, "lastTransitionTime": now_ts()}
    for k in ("reason", "message"):
        if cond.get(k):
            new[k] = cond[k]
    conds = list(status.get("conditions") or [])
    for i, c in enumerate(conds):
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"]:
                new["lastTransitionTime"] = c.get("lastTransitionTime")
            conds[i] = new
            break
    else:
        conds.append(new)
    status["conditions"] = conds


def pod_delete(st, pod, grace):
    """Graceful pod deletion as in rest.BeforeDelete + Store.Delete (1.26). Caller holds st.lock.

    Returns the object to answer with (the pod)."""
    m = pod.get("metadata") or {}
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    finalizers = bool(m.get("finalizers"))
    if m.get("deletionTimestamp"):
        cur = m.get("deletionGracePeriodSeconds")
        if cur is None or cur == 0:
            if finalizers:
                return pod
            st.commit(PODS, DELETED, prev=pod)
            return pod
        if grace is None:
            return pod  # graceful deletion already pending: nothing changes
        period = grace if grace >= 0 else 1
        if period >= cur:
            return pod  # only a shorter grace period may be requested
        old_ts = parse_ts(m["deletionTimestamp"]) or dt.datetime.now(dt.timezone.utc)
        new_ts = old_ts - dt.timedelta(seconds=cur) + dt.timedelta(seconds=period)
        new = copy.deepcopy(pod)
        meta(new)["deletionTimestamp"] = fmt_ts(new_ts)
        meta(new)["deletionGracePeriodSeconds"] = period
    else:
        period = grace if grace is not None else spec.get("terminationGracePeriodSeconds", 0) or 0
        if not spec.get("nodeName"):
            period = 0
        if status.get("phase") in ("Failed", "Succeeded"):
            period = 0
        if period < 0:
            period = 1
        new = copy.deepcopy(pod)
        meta(new)["deletionTimestamp"] = now_ts(period)
        meta(new)["deletionGracePeriodSeconds"] = period
    out = st.commit(PODS, MODIFIED, new, pod)
    if period > 0 or finalizers:
        return out
    st.commit(PODS, DELETED, prev=out)
    return out


def _headers_dict(headers):
    d = {}
    for k, v in headers.items():
        d[k] = d[k] + ", " + v if k in d else v
    return d


# --------------------------------------------------------------------------
# /_admin API
# --------------------------------------------------------------------------


def _summary(res, o):
    m, s, stt = o.get("metadata") or {}, o.get("spec") or {}, o.get("status") or {}
    if res == PDBS:
        return {"namespace": m.get("namespace"), "name": m.get("name"), "uid": m.get("uid"),
                "resourceVersion": m.get("resourceVersion"), "selector": s.get("selector"),
                "minAvailable": s.get("minAvailable"), "maxUnavailable": s.get("maxUnavailable"),
                "disruptionsAllowed": stt.get("disruptionsAllowed"),
                "disruptedPods": stt.get("disruptedPods") or {}}
    if res == NODES:
        return {"name": m.get("name"), "uid": m.get("uid"), "resourceVersion": m.get("resourceVersion"),
                "labels": m.get("labels") or {}, "taints": s.get("taints") or [],
                "unschedulable": bool(s.get("unschedulable")),
                "allocatable": stt.get("allocatable") or {}}
    gpus = 0
    for c in s.get("containers") or []:
        req = ((c.get("resources") or {}).get("requests") or {})
        try:
            gpus += int(req.get("nvidia.com/gpu", 0))
        except (TypeError, ValueError):
            pass
    return {"namespace": m.get("namespace"), "name": m.get("name"), "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"), "nodeName": s.get("nodeName"),
            "phase": stt.get("phase"), "deletionTimestamp": m.get("deletionTimestamp"),
            "annotations": m.get("annotations") or {}, "labels": m.get("labels") or {}, "gpus": gpus,
            "conditions": [{"type": c.get("type"), "status": c.get("status")} for c in stt.get("conditions") or []]}


def _admin_impl(h: Handler):
    srv: FakeServer = h.server
    st = srv.store
    path = h._rpath[len("/_admin"):] or "/"
    method = h.command
    body = None
    if h._body:
        try:
            body = json.loads(h._body.decode("utf-8"))
        except (ValueError, UnicodeError) as e:
            return 400, {"error": f"invalid JSON: {e}"}
    body = body if body is not None else {}
    p = h._param

    if path == "/health":
        return 200, {"ok": True}
    if path == "/requests":
        if method == "DELETE":
            with srv.rec_cond:
                srv.records.clear()
            return 200, {"cleared": True}
        rx = re.compile(p("match")) if p("match") else None
        since = int(p("since") or 0)
        want = int(p("min") or 0)
        deadline = time.monotonic() + float(p("wait") or 0)

        def select_recs():
            return [r for r in srv.records
                    if r["id"] > since and (rx is None or rx.search(f'{r["method"]} {r["path"]}'))]

        with srv.rec_cond:
            out = select_recs()
            while len(out) < want and time.monotonic() < deadline:
                srv.rec_cond.wait(max(0.0, min(0.5, deadline - time.monotonic())))
                out = select_recs()
            out = [dict(r) for r in out]
        return 200, out
    if path in ("/fault", "/faults"):
        if method == "DELETE":
            with srv.fault_lock:
                for f in srv.faults:
                    f.release.set()
                srv.faults.clear()
            return 200, {"cleared": True}
        if method == "POST":
            items = body if isinstance(body, list) else [body]
            try:
                new = [Fault(d) for d in items]
            except (ValueError, TypeError, re.error) as e:
                return 400, {"error": str(e)}
            with srv.fault_lock:
                srv.faults.extend(new)
            res = [f.as_dict() for f in new]
            return 200, res if isinstance(body, list) else res[0]
        with srv.fault_lock:
            return 200, [f.as_dict() for f in srv.faults]
    if path == "/token":
        if method == "POST":
            toks = body.get("tokens")
            if toks is None:
                if "token" not in body:
                    return 400, {"error": "need token or tokens"}
                toks = [body["token"]]
            with srv.auth_lock:
                if body.get("keep_old"):
                    srv.tokens |= set(toks)
                else:
                    srv.tokens = set(toks)
                cur = sorted(srv.tokens)
            return 200, {"tokens": cur}
        with srv.auth_lock:
            return 200, {"tokens": sorted(srv.tokens)}
    if path == "/compact" and method == "POST":
        with st.lock:
            st.compact(int(body.get("keep", 0)))
            return 200, {"resourceVersion": st.rv, "compactedResourceVersion": st.compacted_rv,
                         "events": len(st.events)}
    if path == "/close-watches" and method == "POST":
        mode = body.get("mode", "drop")
        if mode not in ("drop", "rst", "end"):
            return 400, {"error": "mode must be drop, rst or end"}
        rx = re.compile(body["match"]) if body.get("match") else None
        with st.lock:
            n = 0
            for w in st.watches.values():
                if rx is None or rx.search(w.path + "?" + w.query):
                    w.close_mode = mode
                    n += 1
            st.cond.notify_all()
        return 200, {"closed": n}
    if path == "/watches":
        want = int(p("min") or 0)
        deadline = time.monotonic() + float(p("wait") or 0)
        with st.lock:
            while len(st.watches) < want and time.monotonic() < deadline:
                st.cond.wait(max(0.0, min(0.5, deadline - time.monotonic())))
            return 200, [{"id": w.id, "resource": w.res, "path": w.path, "query": w.query, "client": w.client,
                          "started": w.started, "sent": w.sent} for w in st.watches.values()]
    if path == "/state":
        full = parse_bool(p("full") or "")
        with st.lock:
            nodes = [o for _, o in sorted(st.objs[NODES].items())]
            pods = [o for _, o in sorted(st.objs[PODS].items())]
            pdbs = [o for _, o in sorted(st.objs[PDBS].items())]
            return 200, {"resourceVersion": st.rv, "compactedResourceVersion": st.compacted_rv,
                         "nodes": nodes if full else [_summary(NODES, o) for o in nodes],
                         "pods": pods if full else [_summary(PODS, o) for o in pods],
                         "pdbs": pdbs if full else [_summary(PDBS, o) for o in pdbs]}
    if path == "/events":
        since = int(p("since") or 0)
        with st.lock:
            return 200, [{"type": e.type, "kind": KIND[e.res], "resourceVersion": e.rv,
                          "namespace": (e.obj.get("metadata") or {}).get("namespace"),
                          "name": (e.obj.get("metadata") or {}).get("name")}
                         for e in st.events_after(since)]
    if path == "/force-delete" and method == "POST":
        kind = body.get("kind", "Pod")
        with st.lock:
            if kind in ("Node", "PodDisruptionBudget"):
                res = KIND_RES[kind]
                key = body.get("name", "") if res == NODES else \
                    f'{body.get("namespace", "default")}/{body.get("name", "")}'
                obj = st.get(res, key)
                if obj is None:
                    return 404, {"error": f"no such {kind}"}
                st.commit(res, DELETED, prev=obj)
                return 200, {"deleted": True, "resourceVersion": st.rv}
            obj = st.get(PODS, f'{body.get("namespace", "default")}/{body.get("name", "")}')
            if obj is None:
                return 404, {"error": "no such pod"}
            if (obj.get("metadata") or {}).get("finalizers"):
                new = copy.deepcopy(obj)
                meta(new).pop("finalizers", None)
                obj = st.commit(PODS, MODIFIED, new, obj)
            pod_delete(st, obj, 0)
            if st.get(PODS, obj_key(PODS, obj)) is not None:
                st.commit(PODS, DELETED, prev=st.get(PODS, obj_key(PODS, obj)))
            return 200, {"deleted": True, "resourceVersion": st.rv}
    if path == "/upsert" and method == "POST":
        obj = body.get("object", body)
        if not isinstance(obj, dict) or obj.get("kind") not in ("Pod", "Node", "PodDisruptionBudget"):
            return 400, {"error": "object with kind Pod, Node or PodDisruptionBudget required"}
        res = KIND_RES[obj["kind"]]
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = API_VERSION[res]
        m = meta(obj)
        if not m.get("name"):
            return 400, {"error": "metadata.name required"}
        if res in NAMESPACED:
            m.setdefault("namespace", "default")
            if body.get("defaults"):
                default_pod(obj)
        with st.lock:
            old = st.get(res, obj_key(res, obj))
            m.setdefault("uid", (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4()))
            m.setdefault("creationTimestamp",
                         (old or {}).get("metadata", {}).get("creationTimestamp") or now_ts())
            out = st.commit(res, MODIFIED if old else ADDED, obj, old)
        return 200, out
    if path == "/config":
        if method == "POST":
            cfg = srv.cfg
            if "bookmark_interval" in body:
                cfg.bookmark_interval = float(body["bookmark_interval"])
            if "go_chunking" in body:
                cfg.go_chunking = bool(body["go_chunking"])
            if "anonymous_forbidden" in body:
                cfg.anonymous_forbidden = bool(body["anonymous_forbidden"])
            if "node_taint_admission" in body:
                cfg.node_taint_admission = bool(body["node_taint_admission"])
            if "event_window" in body:
                with st.lock:
                    st.window = max(1, int(body["event_window"]))
                    st._trim(st.window)
            with st.cond:
                st.cond.notify_all()
        return 200, srv.cfg.as_dict(st)
    return 404, {"error": f"unknown admin endpoint {method} {h._rpath}"}


def _admin(self: Handler):
    try:
        code, out = _admin_impl(self)
    except (ValueError, TypeError, KeyError, re.error) as e:
        code, out = 400, {"error": f"{type(e).__name__}: {e}"}
    self._reply(code, go_json(out) + b"\n")


Handler._admin = _admin


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def _parse_listen(s):
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", s) or re.fullmatch(r"([^:]*):(\d+)", s)
    if not m:
        raise SystemExit(f"--listen: expected HOST:PORT, got {s!r}")
    host = m.group(1) or "127.0.0.1"
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return host, int(m.group(2)), fam


def _load_list(path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    return d.get("items") or [], int((d.get("metadata") or {}).get("resourceVersion") or 0)


def build_parser():
    ap = argparse.ArgumentParser(description="Fake kube-apiserver v1.26.1 for gpu-extender tests")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 = pick a free one)")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca", help="also accept client certificates signed by this CA")
    ap.add_argument("--seed-fixtures", metavar="DIR",
                    help="load DIR/list-nodes.200.json and DIR/list-pods-on-node.200.json")
    ap.add_argument("--seed-json", metavar="FILE", help='load {"nodes": [...], "pods": [...], "pdbs": [...]}')
    ap.add_argument("--log", help="request log file (default stderr)")
    ap.add_argument("--event-window", type=int, default=1000, help="watch events retained (default 1000)")
    ap.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between BOOKMARKs")
    ap.add_argument("--initial-rv", type=int, default=0,
                    help="starting resourceVersion (default: above the seed's max, at least 1000)")
    ap.add_argument("--idle-timeout", type=float, default=90.0,
                    help="close idle keep-alive connections after this many seconds (kube: 90)")
    ap.add_argument("--go-chunking", action="store_true",
                    help="like Go: send bodies over 2048 bytes with Transfer-Encoding: chunked")
    ap.add_argument("--anonymous-forbidden", action="store_true",
                    help="requests without credentials get 403 (anonymous auth on) instead of 401")
    ap.add_argument("--no-node-taint-admission", action="store_true",
                    help="do not add the not-ready:NoSchedule taint to created nodes")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    host, port, fam = _parse_listen(args.listen)
    logf = open(args.log, "a", encoding="utf-8") if args.log else sys.stderr

    seed_nodes, seed_pods, seed_pdbs, max_rv = [], [], [], 0
    if args.seed_fixtures:
        items, rv = _load_list(os.path.join(args.seed_fixtures, "list-nodes.200.json"))
        seed_nodes += items
        max_rv = max(max_rv, rv)
        items, rv = _load_list(os.path.join(args.seed_fixtures, "list-pods-on-node.200.json"))
        seed_pods += items
        max_rv = max(max_rv, rv)
    if args.seed_json:
        with open(args.seed_json, encoding="utf-8") as f:
            d = json.load(f)
        seed_nodes += d.get("nodes") or []
        seed_pods += d.get("pods") or []
        seed_pdbs += d.get("pdbs") or []
    for o in seed_nodes + seed_pods + seed_pdbs:
        try:
            max_rv = max(max_rv, int((o.get("metadata") or {}).get("resourceVersion") or 0))
        except ValueError:
            pass
    initial = args.initial_rv if args.initial_rv > max_rv else max(1000, (max_rv // 1000 + 1) * 1000)

    store = Store(initial, args.event_window)
    with store.lock:
        for o in seed_nodes:
            store.seed(NODES, o)
        for o in seed_pods:
            store.seed(PODS, o)
        for o in seed_pdbs:
            store.seed(PDBS, o)

    ssl_ctx = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise SystemExit("--tls-cert and --tls-key go together")
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ssl_ctx.set_alpn_protocols(["http/1.1"])
        if args.client_ca:
            ssl_ctx.load_verify_locations(args.client_ca)
            ssl_ctx.verify_mode = ssl.CERT_OPTIONAL
    elif args.client_ca:
        raise SystemExit("--client-ca needs --tls-cert/--tls-key")

    cfg = Config(args)
    server = FakeServer((host, port), fam, cfg, store, ssl_ctx, args.token, logf, bool(args.client_ca))
    bound = server.server_address[1]
    scheme = "https" if ssl_ctx else "http"
    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{bound}\n")
        os.replace(tmp, args.port_file)
    server.log(f"fake kube-apiserver listening on {scheme}://{host}:{bound} rv={store.rv} "
               f"nodes={len(store.objs[NODES])} pods={len(store.objs[PODS])} pdbs={len(store.objs[PDBS])}")

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="serve", daemon=True)
    t.start()
    while not stop.wait(1.0):
        pass
    server.log("shutting down")
    server.stopping.set()
    with store.cond:
        store.cond.notify_all()
    with server.fault_lock:
        for f in server.faults:
            f.release.set()
    server.shutdown()
    server.server_close()
    t.join(2)
    # give streaming watches a moment to send their final chunk
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        with store.lock:
            if not store.watches:
                break
        time.sleep(0.05)
    if logf is not sys.stderr:
        logf.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

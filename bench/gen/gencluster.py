#!/usr/bin/env python3
"""gencluster.py -- deterministic, realistic GPU cluster data for the gpu-extender benchmarks.

Everything is a pure function of (node index, pod index): the same command writes the same
bytes on every machine and every run (no clock, no uuid4, no dict-order surprises), and a
cluster of N nodes is the first N nodes of any bigger one.

Shapes follow the real objects captured from kube-apiserver 1.26 in
tests/fixtures/kube-1.26/apiserver/raw/ (key order, managedFields, conditions, the Pod spec
that admission fills in), grown to what a production GPU node carries: about 35 labels from
the GPU operator, GPU Feature Discovery and Node Feature Discovery, 20 container images,
managedFields from five managers, and the gpu-extender.io/topology annotation. About 12 KB
per node, 3 KB per pod.

Library use (bench/scripts/replay_apiserver.py imports it):
    node_json(i) -> str          one Node, compact JSON, no kind/apiVersion (as in a List)
    pods_of_node(i) -> [str]     the PODS_PER_NODE pods bound to node i, compact JSON
    pending_pod() -> dict        the pod being scheduled (2 GPUs, prefers H100 then A100)
    nodes_to_score(n) -> int     kube-scheduler's default numFeasibleNodesToFind

Command line:
    gencluster.py all --out DIR [--max-nodes 15000] [--seed-nodes 5000] [--parts seed,requests]
        writes DIR/req/full-N.json and DIR/req/names-N.json (ExtenderArgs in both shapes),
        DIR/seed-S.json ({"nodes":[...],"pods":[...]} for tests/fake_apiserver.py --seed-json),
        DIR/pods-M.tsv (pod facts for the micro-benchmark's cache) and DIR/manifest.json.
    gencluster.py node I | pod I J | sizes
"""

import argparse
import functools
import hashlib
import json
import os
import random
import sys
import time

SEED = "gpu-extender-bench-v1"
PODS_PER_NODE = 10
# True: every node of a model carries the same topology annotation (same GPU UUIDs), which no
# real cluster does; the cache benchmark uses it once to show what per-node topologies cost.
SHARED_TOPOLOGY = False
BASE_EPOCH = 1793520000  # 2026-11-01T08:00:00Z: a fixed clock, so output never changes

# Request sizes: the cluster sizes of the issue and what kube-scheduler really sends for them.
CLUSTER_SIZES = (100, 1000, 5000, 15000)

# (product label, family, memory MiB, GPUs, box, NVLink name, compute major.minor, instance type,
#  share of nodes in percent). HGX boxes: every GPU pair on NVLink; PCIe boxes: two PIX pairs on
# two NUMA nodes, SYS across. A100 SXM4 has 12 NVLinks per GPU (NV12), H100 SXM5 18 (NV18).
MODELS = (
    ("NVIDIA-H100-80GB-HBM3", "hopper", 81559, 8, "hgx", "NV18", (9, 0), "p5.48xlarge", 30),
    ("NVIDIA-A100-SXM4-80GB", "ampere", 81920, 8, "hgx", "NV12", (8, 0), "p4de.24xlarge", 30),
    ("NVIDIA-L40S", "ada-lovelace", 46068, 4, "pcie", None, (8, 9), "g6e.12xlarge", 20),
    ("Tesla-T4", "turing", 15360, 4, "pcie", None, (7, 5), "g4dn.12xlarge", 18),
    (None, None, 0, 0, "cpu", None, (0, 0), "m6i.32xlarge", 2),
)
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d")

SYSTEM_IMAGES = (
    ("registry.k8s.io/kube-proxy", "v1.26.15", 23907328),
    ("registry.k8s.io/pause", "3.9", 321520),
    ("nvcr.io/nvidia/k8s-device-plugin", "v0.15.0", 146735488),
    ("nvcr.io/nvidia/gpu-feature-discovery", "v0.8.2", 139263590),
    ("nvcr.io/nvidia/k8s/dcgm-exporter", "3.3.5-3.4.1-ubuntu22.04", 360140520),
    ("nvcr.io/nvidia/k8s/container-toolkit", "v1.15.0-ubuntu20.04", 133297345),
    ("nvcr.io/nvidia/driver", "550.54.15-ubuntu22.04", 389563104),
    ("nvcr.io/nvidia/cloud-native/gpu-operator-validator", "v24.3.0", 184536120),
    ("registry.k8s.io/nfd/node-feature-discovery", "v0.14.2", 72430091),
    ("quay.io/prometheus/node-exporter", "v1.7.0", 11674215),
    ("docker.io/calico/node", "v3.26.4", 114617330),
    ("docker.io/calico/cni", "v3.26.4", 93314581),
)
WORKLOAD_IMAGES = (
    ("nvcr.io/nvidia/pytorch", "24.01-py3", 10473294866),
    ("nvcr.io/nvidia/pytorch", "23.10-py3", 9853107440),
    ("nvcr.io/nvidia/tritonserver", "24.01-py3", 7114835712),
    ("nvcr.io/nvidia/nemo", "24.01.framework", 13943212401),
    ("nvcr.io/nvidia/tensorflow", "24.01-tf2-py3", 7623456111),
    ("nvcr.io/nvidia/cuda", "12.3.2-runtime-ubuntu22.04", 1487654021),
    ("ghcr.io/huggingface/text-generation-inference", "1.4.2", 4829173420),
    ("docker.io/vllm/vllm-openai", "v0.3.3", 8237645102),
    ("docker.io/rayproject/ray-ml", "2.9.3-gpu", 9137582001),
    ("docker.io/fluent/fluent-bit", "2.2.2", 31645210),
    ("docker.io/library/busybox", "1.36", 2231050),
    ("nvcr.io/nvidia/k8s/cuda-sample", "vectoradd-cuda12.2.0-ubuntu22.04", 103621843),
)


# ---------------------------------------------------------------- helpers

def rng_for(*parts):
    return random.Random(SEED + ":" + ":".join(str(p) for p in parts))


def hexid(r, n):
    return "%0*x" % (n, r.getrandbits(4 * n))


def uuid_from(r):
    h = hexid(r, 32)
    return "%s-%s-4%s-%x%s-%s" % (h[0:8], h[8:12], h[13:16], 8 + (int(h[16], 16) & 3), h[17:20], h[20:32])


def ts(offset_s):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_EPOCH + int(offset_s)))


def compact(obj):
    # Go's encoding/json: compact, UTF-8, HTML-escaped; our data holds no <, > or &.
    return json.dumps(obj, separators=(",", ":"))


def node_name(i):
    return "gpu-node-%05d" % i


@functools.lru_cache(maxsize=None)
def model_of(i):
    """The model row of node i: a deterministic mix with the shares in MODELS."""
    r = rng_for("model", i).random() * 100
    acc = 0
    for m in MODELS:
        acc += m[8]
        if r < acc:
            return m
    return MODELS[-1]


def fields(keys):
    """A FieldsV1 set: {".":{}, "f:k1":{}, ...}."""
    d = {".": {}}
    for k in keys:
        d["f:" + k] = {}
    return d


def nodes_to_score(n):
    """kube-scheduler's numFeasibleNodesToFind with the default percentageOfNodesToScore (0):
    all nodes under 100; else adaptive 50 - n/125 percent, at least 5, and at least 100 nodes."""
    if n < 100:
        return n
    pct = 50 - n // 125
    if pct < 5:
        pct = 5
    k = n * pct // 100
    return max(100, k)


# ---------------------------------------------------------------- nodes

def topology(r, gpus, box, link):
    out = {"gpus": [], "links": []}
    for g in range(gpus):
        numa = 0 if box == "hgx" and g < gpus // 2 else (g * 2 // gpus)
        out["gpus"].append({"index": g, "uuid": "GPU-" + uuid_from(r), "numa": numa})
    for a in range(gpus):
        for b in range(a + 1, gpus):
            if box == "hgx":
                name = link
            else:
                name = "PIX" if a // 2 == b // 2 else "SYS"
            out["links"].append([a, b, name])
    return out


def node_obj(i):
    r = rng_for("node", i)
    product, family, mem_mib, gpus, box, link, cc, itype, _ = model_of(i)
    name = node_name(i)
    zone = ZONES[i % len(ZONES)]
    ip = "10.%d.%d.%d" % (16 + (i >> 16), (i >> 8) & 255, i & 255)
    iid = "i-0" + hexid(r, 16)
    created = 86400 * 3 + i * 7
    hb = 86400 * 20 + (i % 600)
    cpu, mem_gi = (192, 2048) if box == "hgx" else (48, 192) if box == "pcie" else (128, 512)

    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": itype,
        "beta.kubernetes.io/os": "linux",
        "feature.node.kubernetes.io/cpu-cpuid.AVX512F": "true",
        "feature.node.kubernetes.io/kernel-version.full": "5.15.0-1051-aws",
        "feature.node.kubernetes.io/pci-10de.present": "true" if gpus else "false",
        "feature.node.kubernetes.io/system-os_release.ID": "ubuntu",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": itype,
        "node-role.kubernetes.io/gpu-worker": "",
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": zone,
    }
    gfd = {}
    if gpus:
        gfd = {
            "nvidia.com/cuda.driver-version.full": "550.54.15",
            "nvidia.com/cuda.driver-version.major": "550",
            "nvidia.com/cuda.driver-version.minor": "54",
            "nvidia.com/cuda.driver-version.revision": "15",
            "nvidia.com/cuda.runtime-version.full": "12.4",
            "nvidia.com/gfd.timestamp": str(BASE_EPOCH + created + 120),
            "nvidia.com/gpu.compute.major": str(cc[0]),
            "nvidia.com/gpu.compute.minor": str(cc[1]),
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.deploy.dcgm-exporter": "true",
            "nvidia.com/gpu.deploy.device-plugin": "true",
            "nvidia.com/gpu.deploy.gpu-feature-discovery": "true",
            "nvidia.com/gpu.family": family,
            "nvidia.com/gpu.machine": itype.split(".")[0].upper() + "-" + itype.split(".")[1],
            "nvidia.com/gpu.memory": str(mem_mib),
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.replicas": "1",
            "nvidia.com/gpu.sharing-strategy": "none",
            "nvidia.com/mig.capable": "true" if box == "hgx" else "false",
            "nvidia.com/mig.strategy": "single",
        }
    labels.update(gfd)
    labels = dict(sorted(labels.items()))  # the API server returns maps with sorted keys

    feature_names = sorted(k.split("/", 1)[1] for k in labels if k.startswith("feature.node"))
    annotations = {
        "csi.volume.kubernetes.io/nodeid": compact({"ebs.csi.aws.com": iid}),
    }
    if gpus:
        trng = rng_for("topology", product) if SHARED_TOPOLOGY else r
        annotations["gpu-extender.io/topology"] = compact(topology(trng, gpus, box, link))
    annotations.update({
        "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
        "nfd.node.kubernetes.io/extended-resources": "",
        "nfd.node.kubernetes.io/feature-labels": ",".join(feature_names + sorted(
            k.split("/", 1)[1] for k in gfd)),
        "nfd.node.kubernetes.io/master.version": "v0.14.2",
        "nfd.node.kubernetes.io/worker.version": "v0.14.2",
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    })

    cap = {"cpu": str(cpu), "ephemeral-storage": "1845862380Ki", "hugepages-1Gi": "0",
           "hugepages-2Mi": "0", "memory": "%dKi" % (mem_gi * 1048576 - 2 * 1024 * 1024)}
    alloc = {"cpu": "%dm" % (cpu * 1000 - 1930), "ephemeral-storage": "1700179300902",
             "hugepages-1Gi": "0", "hugepages-2Mi": "0",
             "memory": "%dKi" % (mem_gi * 1048576 - 8 * 1024 * 1024)}
    if gpus:
        cap["nvidia.com/gpu"] = alloc["nvidia.com/gpu"] = str(gpus)
    cap["pods"] = alloc["pods"] = "110"

    t_cond = ts(created + 60)
    conditions = [
        {"type": t, "status": "False", "lastHeartbeatTime": ts(hb), "lastTransitionTime": t_cond,
         "reason": reason, "message": msg}
        for t, reason, msg in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))]
    conditions.append({"type": "Ready", "status": "True", "lastHeartbeatTime": ts(hb),
                       "lastTransitionTime": ts(created + 95), "reason": "KubeletReady",
                       "message": "kubelet is posting ready status. AppArmor enabled"})

    images = []
    picks = list(SYSTEM_IMAGES[:12]) + r.sample(WORKLOAD_IMAGES, 8)
    for repo, tag, size in picks:
        images.append({"names": ["%s@sha256:%s" % (repo, hexid(r, 64)), "%s:%s" % (repo, tag)],
                       "sizeBytes": size})
    images.sort(key=lambda im: -im["sizeBytes"])  # kubelet reports the largest first

    cond_fields = {}
    for c in ("DiskPressure", "MemoryPressure", "PIDPressure", "Ready"):
        cond_fields['k:{"type":"%s"}' % c] = fields(
            ["lastHeartbeatTime", "lastTransitionTime", "message", "reason", "status", "type"])
    managed = [
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": ts(created),
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {
             "f:annotations": fields(["kubeadm.alpha.kubernetes.io/cri-socket",
                                      "volumes.kubernetes.io/controller-managed-attach-detach"]),
             "f:labels": fields(["beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type",
                                 "beta.kubernetes.io/os", "kubernetes.io/arch",
                                 "kubernetes.io/hostname", "kubernetes.io/os",
                                 "node.kubernetes.io/instance-type", "topology.kubernetes.io/region",
                                 "topology.kubernetes.io/zone"])},
             "f:spec": {"f:providerID": {}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
         "time": ts(created + 5), "fieldsType": "FieldsV1", "fieldsV1": {
             "f:metadata": {"f:annotations": {"f:node.alpha.kubernetes.io/ttl": {}}},
             "f:spec": {"f:podCIDR": {}, "f:podCIDRs": {".": {}, 'v:"10.%d.%d.0/24"' % (
                 128 + (i >> 8), i & 255): {}}}}},
        {"manager": "nfd-master", "operation": "Update", "apiVersion": "v1", "time": ts(created + 120),
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {
             "f:annotations": {k2: {} for k2 in (
                 "f:nfd.node.kubernetes.io/extended-resources", "f:nfd.node.kubernetes.io/feature-labels",
                 "f:nfd.node.kubernetes.io/master.version", "f:nfd.node.kubernetes.io/worker.version")},
             "f:labels": {"f:" + k: {} for k in labels if k.startswith(("feature.", "nvidia.com/"))}}}},
        {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": ts(hb),
         "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {
             "f:allocatable": {"f:" + k: {} for k in alloc},
             "f:capacity": {"f:" + k: {} for k in cap},
             "f:conditions": cond_fields,
             "f:images": {},
             "f:nodeInfo": {"f:bootID": {}, "f:kernelVersion": {}, "f:systemUUID": {}}}},
         "subresource": "status"},
    ]
    if gpus:
        managed.insert(3, {"manager": "gpu-topology-publisher", "operation": "Apply", "apiVersion": "v1",
                           "time": ts(created + 130), "fieldsType": "FieldsV1", "fieldsV1": {
                               "f:metadata": {"f:annotations": {"f:gpu-extender.io/topology": {}}}}})

    spec = {"podCIDR": "10.%d.%d.0/24" % (128 + (i >> 8), i & 255),
            "podCIDRs": ["10.%d.%d.0/24" % (128 + (i >> 8), i & 255)],
            "providerID": "aws:///%s/%s" % (zone, iid)}
    if gpus:
        spec["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]

    return {
        "metadata": {
            "name": name,
            "uid": uuid_from(r),
            "resourceVersion": str(100000 + i),
            "creationTimestamp": ts(created),
            "labels": labels,
            "annotations": annotations,
            "managedFields": managed,
        },
        "spec": spec,
        "status": {
            "capacity": cap,
            "allocatable": alloc,
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "InternalDNS", "address": "ip-%s.ec2.internal" % ip.replace(".", "-")},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": hexid(r, 32),
                "systemUUID": "ec2" + uuid_from(r)[3:],
                "bootID": uuid_from(r),
                "kernelVersion": "5.15.0-1051-aws",
                "osImage": "Ubuntu 22.04.4 LTS",
                "containerRuntimeVersion": "containerd://1.7.13",
                "kubeletVersion": "v1.26.15",
                "kubeProxyVersion": "v1.26.15",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": images,
        },
    }


def node_json(i):
    return compact(node_obj(i))


def node_gpus(i):
    return model_of(i)[3]


# ---------------------------------------------------------------- pods

PROJECTED_VOLUME = {"projected": {"sources": [
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                   "fieldPath": "metadata.namespace"}}]}}],
    "defaultMode": 420}}
DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def usage_plan(i):
    """GPU requests of the Running GPU pods on node i: nodes cycle full, full, half, half, empty,
    so a 2-GPU pod fits on 3 nodes in 5 once the cache counts used GPUs."""
    gpus = node_gpus(i)
    kind = i % 5
    if not gpus or kind == 4:
        return []
    if gpus == 8:
        return [4, 2, 1, 1] if kind < 2 else [2, 1, 1]
    return [2, 1, 1] if kind < 2 else [1, 1]


def pod_vars(i, j):
    """Pod j (0..PODS_PER_NODE-1) of node i as (shape, values): 2 DaemonSet pods without GPUs
    (kube-proxy, dcgm-exporter), then the Running GPU pods of usage_plan(i), then finished GPU
    jobs (Succeeded: listed, counted by no one). On a node without GPUs the rest are CPU batch
    pods. The shape fixes the JSON layout; the values are strings that need no JSON escaping."""
    r = rng_for("pod", i, j)
    plan = usage_plan(i)
    gpus_node = node_gpus(i)
    created = 86400 * 10 + i * 3 + j
    start = created + 4
    suffix = hexid(r, 5)
    if j < 2:  # DaemonSet pods share a namespace: a bijection of i keeps their names unique
        suffix = "%05x" % ((i * 0x9E3779B1) & 0xFFFFF)
    if j < 2:
        kind, gpus, phase = "ds", 0, "Running"
        name = "%s-%s" % (("kube-proxy", "nvidia-dcgm-exporter")[j], suffix)
        ns = ("kube-system", "gpu-operator")[j]
    else:
        k = j - 2
        ns = "ml-team-%02d" % (i % 24)
        name = "train-%05d-%d-%s" % (i, j, suffix)
        if not gpus_node:
            kind, gpus, phase = "batch", 0, "Running"
        elif k < len(plan):
            kind, gpus, phase = "gpu", plan[k], "Running"
        else:
            kind, gpus, phase = "gpu", 1 + (k % 2), "Succeeded"
    v = {
        "name": name, "ns": ns, "suffix": suffix, "uid": uuid_from(r), "owner_uid": uuid_from(r),
        "rv": str(200000 + i * PODS_PER_NODE + j), "node": node_name(i), "job": "job-%05d-%d" % (i, j),
        "t_created": ts(created), "t_sched": ts(created + 1), "t_start": ts(start),
        "t_ready": ts(start + 30), "t_run": ts(start + 25), "t_end": ts(start + 7200),
        "host_ip": "10.%d.%d.%d" % (16 + (i >> 16), (i >> 8) & 255, i & 255),
        "pod_ip": "10.%d.%d.%d" % (128 + (i >> 8), i & 255, 2 + j),
        "cid": hexid(r, 64), "cid2": hexid(r, 64), "image_id": hexid(r, 64),
    }
    if kind == "ds":
        v["owner_uid"] = ds_uid(j)
    return (kind, gpus, phase, j if kind == "ds" else -1), v


@functools.lru_cache(maxsize=None)
def ds_uid(j):
    return uuid_from(rng_for("ds", j))


def pod_build(shape, v):
    kind, gpus, phase, ds = shape
    if kind == "ds":
        app = ("kube-proxy", "nvidia-dcgm-exporter")[ds]
        image = ("registry.k8s.io/kube-proxy:v1.26.15",
                 "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.5-3.4.1-ubuntu22.04")[ds]
    else:
        app, image = "train", "nvcr.io/nvidia/pytorch:24.01-py3"
    vol = "kube-api-access-" + v["suffix"]
    res = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    if gpus:
        res = {"limits": {"nvidia.com/gpu": str(gpus)},
               "requests": {"cpu": "%d" % (8 * gpus), "memory": "%dGi" % (64 * gpus),
                            "nvidia.com/gpu": str(gpus)}}
    container = {"name": app if kind == "ds" else "trainer", "image": image}
    if kind != "ds":
        container["command"] = ["torchrun", "--nproc_per_node=%d" % max(gpus, 1), "train.py"]
        container["env"] = [{"name": "NCCL_DEBUG", "value": "WARN"}, {"name": "JOB_ID", "value": v["job"]}]
    container["resources"] = res
    container["volumeMounts"] = [{"name": vol, "readOnly": True,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    container.update({"terminationMessagePath": "/dev/termination-log",
                      "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"})
    labels = {"app": app}
    if kind == "ds":
        labels.update({"controller-revision-hash": "6d4f" + v["suffix"], "pod-template-generation": "3"})
        owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": app,
                 "uid": v["owner_uid"], "controller": True, "blockOwnerDeletion": True}
    else:
        labels.update({"batch.kubernetes.io/job-name": v["job"], "job-name": v["job"]})
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": v["job"],
                 "uid": v["owner_uid"], "controller": True, "blockOwnerDeletion": True}
    tolerations = list(DEFAULT_TOLERATIONS)
    if gpus or kind == "ds":
        tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}] + tolerations
    meta_fields = {"f:metadata": {"f:labels": fields(sorted(labels)),
                                  "f:ownerReferences": {".": {}, 'k:{"uid":"%s"}' % owner["uid"]: {}}},
                   "f:spec": {"f:containers": {'k:{"name":"%s"}' % container["name"]: fields(
                       ["image", "imagePullPolicy", "name", "resources", "terminationMessagePath",
                        "terminationMessagePolicy"])},
                       "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {},
                       "f:schedulerName": {}, "f:securityContext": {},
                       "f:terminationGracePeriodSeconds": {}, "f:tolerations": {}}}
    running = phase == "Running"
    ready = "True" if running else "False"
    status = {
        "phase": phase,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": v["t_start"]},
            {"type": "Ready", "status": ready, "lastProbeTime": None, "lastTransitionTime": v["t_ready"]},
            {"type": "ContainersReady", "status": ready, "lastProbeTime": None,
             "lastTransitionTime": v["t_ready"]},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": v["t_sched"]},
        ],
        "hostIP": v["host_ip"],
        "podIP": v["pod_ip"],
        "podIPs": [{"ip": v["pod_ip"]}],
        "startTime": v["t_start"],
        "containerStatuses": [{
            "name": container["name"],
            "state": ({"running": {"startedAt": v["t_run"]}} if running else
                      {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": v["t_run"],
                                      "finishedAt": v["t_end"], "containerID": "containerd://" + v["cid2"]}}),
            "lastState": {}, "ready": running, "restartCount": 0, "image": image,
            "imageID": image.split(":")[0] + "@sha256:" + v["image_id"],
            "containerID": "containerd://" + v["cid"], "started": running}],
        "qosClass": "Burstable",
    }
    meta = {"name": v["name"]}
    if kind == "ds":
        meta["generateName"] = app + "-"
    meta.update({
        "namespace": v["ns"],
        "uid": v["uid"],
        "resourceVersion": v["rv"],
        "creationTimestamp": v["t_created"],
        "labels": dict(sorted(labels.items())),
        "ownerReferences": [owner],
        "managedFields": [
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
             "time": v["t_created"], "fieldsType": "FieldsV1", "fieldsV1": meta_fields},
            {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": v["t_ready"],
             "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {
                 "f:conditions": {'k:{"type":"%s"}' % c: fields(["lastProbeTime", "lastTransitionTime",
                                                                  "status", "type"])
                                  for c in ("ContainersReady", "Initialized", "Ready")},
                 "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {},
                 "f:podIPs": {".": {}, 'k:{"ip":"%s"}' % v["pod_ip"]: fields(["ip"])},
                 "f:startTime": {}}},
             "subresource": "status"},
        ],
    })
    return {
        "metadata": meta,
        "spec": {
            "volumes": [dict({"name": vol}, **PROJECTED_VOLUME)],
            "containers": [container],
            "restartPolicy": "Always" if kind == "ds" else "Never",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": v["node"],
            "securityContext": {},
            "schedulerName": "gpu-scheduler" if gpus else "default-scheduler",
            "tolerations": tolerations,
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": status,
    }


def pod_obj(i, j):
    return pod_build(*pod_vars(i, j))


_POD_TEMPLATES = {}


def pod_json(i, j):
    """compact(pod_obj(i, j)), about 10 times faster: the JSON of each shape is rendered once
    with placeholders and then filled in."""
    shape, v = pod_vars(i, j)
    t = _POD_TEMPLATES.get(shape)
    if t is None:
        marks = {k: "@@%s@@" % k for k in v}
        t = compact(pod_build(shape, marks)).replace("%", "%%")
        for k in v:
            t = t.replace(marks[k], "%%(%s)s" % k)
        _POD_TEMPLATES[shape] = t
    return t % v


def pod_facts(i, j):
    """(namespace, name, uid, node, gpus, phase) of pod j of node i, without building JSON."""
    (_, gpus, phase, _), v = pod_vars(i, j)
    return (v["ns"], v["name"], v["uid"], v["node"], gpus, phase)


def pods_of_node(i):
    return [pod_json(i, j) for j in range(PODS_PER_NODE)]


def pending_pod():
    """The pod being scheduled, as kube-scheduler sends it: like the captured gpu-pod-1 (after
    admission and defaulting), asking 2 GPUs, preferring H100 then A100, tolerating the GPU
    taint, on the gpu-scheduler profile."""
    r = rng_for("pending")
    uid = uuid_from(r)
    vol = "kube-api-access-" + hexid(r, 6)[:5]
    created = ts(86400 * 30)
    return {
        "metadata": {
            "name": "llm-finetune-7b-0", "generateName": "llm-finetune-7b-", "namespace": "ml-team-03",
            "uid": uid, "resourceVersion": "9000001", "creationTimestamp": created,
            "labels": {"app": "llm-finetune", "batch.kubernetes.io/job-name": "llm-finetune-7b",
                       "job-name": "llm-finetune-7b", "team": "ml-team-03"},
            "annotations": {"gpu-extender.io/gpu-model-preferred": "H100,A100"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "llm-finetune-7b",
                                 "uid": uuid_from(r), "controller": True, "blockOwnerDeletion": True}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                 "time": created, "fieldsType": "FieldsV1", "fieldsV1": {
                     "f:metadata": {"f:annotations": fields(["gpu-extender.io/gpu-model-preferred"]),
                                    "f:labels": fields(["app", "batch.kubernetes.io/job-name", "job-name", "team"])},
                     "f:spec": {"f:containers": {'k:{"name":"trainer"}': fields(
                         ["command", "image", "imagePullPolicy", "name", "resources", "terminationMessagePath",
                          "terminationMessagePolicy"])},
                         "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {},
                         "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {},
                         "f:tolerations": {}}}},
                {"manager": "kube-scheduler", "operation": "Update", "apiVersion": "v1", "time": created,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {
                     ".": {}, 'k:{"type":"PodScheduled"}': fields(
                         ["lastProbeTime", "lastTransitionTime", "message", "reason", "status", "type"])}}},
                 "subresource": "status"},
            ],
        },
        "spec": {
            "volumes": [dict({"name": vol}, **PROJECTED_VOLUME)],
            "containers": [{
                "name": "trainer", "image": "nvcr.io/nvidia/pytorch:24.01-py3",
                "command": ["torchrun", "--nproc_per_node=2", "finetune.py", "--model", "llama-7b"],
                "resources": {"limits": {"nvidia.com/gpu": "2"},
                              "requests": {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": "2"}},
                "volumeMounts": [{"name": vol, "readOnly": True,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "securityContext": {},
            "schedulerName": "gpu-scheduler",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
            + DEFAULT_TOLERATIONS,
            "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "lastProbeTime": None, "lastTransitionTime": created,
             "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}],
            "qosClass": "Burstable"},
    }


# ---------------------------------------------------------------- requests

def write_requests(out, sizes, node_strs, pod_str):
    """ExtenderArgs exactly as kube-scheduler's json.Marshal writes them (field order Pod,
    Nodes, NodeNames; null for the other shape)."""
    os.makedirs(os.path.join(out, "req"), exist_ok=True)
    info = {}
    for n in sizes:
        full = os.path.join(out, "req", "full-%d.json" % n)
        if n <= len(node_strs):
            with open(full, "w", encoding="utf-8") as f:
                f.write('{"Pod":' + pod_str + ',"Nodes":{"metadata":{},"items":[')
                f.write(",".join(node_strs[:n]))
                f.write(']},"NodeNames":null}')
        names = os.path.join(out, "req", "names-%d.json" % n)
        with open(names, "w", encoding="utf-8") as f:
            f.write('{"Pod":' + pod_str + ',"Nodes":null,"NodeNames":' +
                    compact([node_name(i) for i in range(n)]) + "}")
        info[n] = {"full_bytes": os.path.getsize(full) if n <= len(node_strs) else 0,
                   "names_bytes": os.path.getsize(names)}
    return info


def expected_filter(n, standalone):
    """How many of nodes 0..n-1 a 2-GPU pod passes: with the cache (free = allocatable - used)
    or standalone / Go baseline (allocatable >= 2)."""
    ok = 0
    for i in range(n):
        g = node_gpus(i)
        used = sum(usage_plan(i))
        if g >= 2 and (standalone or g - used >= 2):
            ok += 1
    return ok


def write_seed(path, n):
    """The fake API server's seed: nodes (with kind/apiVersion, as a GET returns them) and the
    pods bound to them."""
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"nodes":[')
        f.write(",".join('{"kind":"Node","apiVersion":"v1",' + node_json(i)[1:] for i in range(n)))
        f.write('],"pods":[')
        first = True
        for i in range(n):
            for s in pods_of_node(i):
                f.write(("" if first else ",") + '{"kind":"Pod","apiVersion":"v1",' + s[1:])
                first = False
        f.write("]}")


def cmd_all(a):
    t0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    parts = set(a.parts.split(","))
    maxn = a.max_nodes
    seed = os.path.join(a.out, "seed-%d.json" % a.seed_nodes)
    if "seed" in parts:
        write_seed(seed, a.seed_nodes)
    if "requests" not in parts:
        return
    node_strs = [node_json(i) for i in range(maxn)]
    pod_str = compact(pending_pod())
    sizes = sorted(set(list(CLUSTER_SIZES) + [nodes_to_score(n) for n in CLUSTER_SIZES] + [3]))
    sizes = [n for n in sizes if n <= maxn]
    info = write_requests(a.out, sizes, node_strs, pod_str)
    # Pod facts for the micro-benchmark's cache (decoding 150,000 pods there is not the point).
    tsv = os.path.join(a.out, "pods-%d.tsv" % maxn)
    with open(tsv, "w", encoding="utf-8") as f:
        for i in range(maxn):
            for j in range(PODS_PER_NODE):
                f.write("\t".join(str(x) for x in pod_facts(i, j)) + "\n")
    node_bytes = sum(len(s) for s in node_strs) / len(node_strs)
    manifest = {
        "generator": "bench/gen/gencluster.py", "seed": SEED, "max_nodes": maxn,
        "pods_per_node": PODS_PER_NODE, "seed_file": os.path.basename(seed),
        "seed_nodes": a.seed_nodes, "pods_tsv": os.path.basename(tsv),
        "mean_node_bytes": round(node_bytes), "pod_bytes_example": len(pod_json(0, 5)),
        "pending_pod_bytes": len(pod_str),
        "labels_per_gpu_node": len(node_obj(0)["metadata"]["labels"]),
        "images_per_node": len(node_obj(0)["status"]["images"]),
        "nodes_to_score": {str(n): nodes_to_score(n) for n in CLUSTER_SIZES},
        "sizes": {str(k): v for k, v in info.items()},
        "expected_pass": {str(n): {"cache": expected_filter(n, False), "standalone": expected_filter(n, True)}
                          for n in sizes},
        "models": {m[0] or "cpu-only": sum(1 for i in range(maxn) if model_of(i) is m) for m in MODELS},
        "seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(a.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps(manifest))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("all")
    p.add_argument("--out", required=True)
    p.add_argument("--max-nodes", type=int, default=15000)
    p.add_argument("--seed-nodes", type=int, default=5000)
    p.add_argument("--parts", default="seed,requests", help="seed (the fake API server's), requests")
    p = sub.add_parser("node")
    p.add_argument("i", type=int)
    p = sub.add_parser("pod")
    p.add_argument("i", type=int)
    p.add_argument("j", type=int)
    sub.add_parser("sizes")
    a = ap.parse_args(argv)
    if a.cmd == "all":
        cmd_all(a)
    elif a.cmd == "node":
        print(node_json(a.i))
    elif a.cmd == "pod":
        print(compact(pod_obj(a.i, a.j)))
    else:
        for n in CLUSTER_SIZES:
            print("%d nodes: kube-scheduler sends %d (percentageOfNodesToScore adaptive %d%%)" % (
                n, nodes_to_score(n), max(5, 50 - n // 125)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

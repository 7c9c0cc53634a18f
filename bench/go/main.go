// Command go-baseline is the Go baseline of the gpu-extender benchmarks: a scheduler extender
// written the way Go extenders are (net/http, encoding/json, types shaped like k8s.io/api's
// core/v1 and k8s.io/kube-scheduler's extender/v1), using only the standard library so it
// builds off-line with Debian's golang-go.
//
// It decodes the whole ExtenderArgs into typed structs (Pod and NodeList with ObjectMeta,
// managedFields, NodeSpec, NodeStatus with images and conditions), as an extender built on the
// Kubernetes types does, then:
//
//	POST /filter      passes the nodes whose status.allocatable["nvidia.com/gpu"] >= the pod's
//	                  request, puts the others in FailedNodes, and answers the passing Node
//	                  objects re-encoded (ExtenderFilterResult, json.NewEncoder)
//	POST /prioritize  scores 0..10 by the GPUs left after placing the pod (HostPriorityList)
//	GET  /healthz     ok
//
// Simplifications, all in Go's favour: quantities stay strings (k8s parses them into
// resource.Quantity), and timestamps are kept as strings (k8s parses metav1.Time).
//
//	go-baseline -listen 127.0.0.1:0 -port-file FILE
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
)

// ---- k8s.io/apimachinery meta/v1 (the fields the objects carry) ----

type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

type ListMeta struct {
	SelfLink           string `json:"selfLink,omitempty"`
	ResourceVersion    string `json:"resourceVersion,omitempty"`
	Continue           string `json:"continue,omitempty"`
	RemainingItemCount *int64 `json:"remainingItemCount,omitempty"`
}

type OwnerReference struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	Name               string `json:"name"`
	UID                string `json:"uid"`
	Controller         *bool  `json:"controller,omitempty"`
	BlockOwnerDeletion *bool  `json:"blockOwnerDeletion,omitempty"`
}

// FieldsV1 keeps the raw JSON of a managed-fields set, as metav1.FieldsV1 does.
type FieldsV1 struct {
	Raw []byte `json:"-"`
}

func (f *FieldsV1) UnmarshalJSON(b []byte) error {
	f.Raw = append(f.Raw[:0], b...)
	return nil
}

func (f FieldsV1) MarshalJSON() ([]byte, error) {
	if f.Raw == nil {
		return []byte("null"), nil
	}
	return f.Raw, nil
}

type ManagedFieldsEntry struct {
	Manager     string    `json:"manager,omitempty"`
	Operation   string    `json:"operation,omitempty"`
	APIVersion  string    `json:"apiVersion,omitempty"`
	Time        *string   `json:"time,omitempty"`
	FieldsType  string    `json:"fieldsType,omitempty"`
	FieldsV1    *FieldsV1 `json:"fieldsV1,omitempty"`
	Subresource string    `json:"subresource,omitempty"`
}

type ObjectMeta struct {
	Name                       string               `json:"name,omitempty"`
	GenerateName               string               `json:"generateName,omitempty"`
	Namespace                  string               `json:"namespace,omitempty"`
	SelfLink                   string               `json:"selfLink,omitempty"`
	UID                        string               `json:"uid,omitempty"`
	ResourceVersion            string               `json:"resourceVersion,omitempty"`
	Generation                 int64                `json:"generation,omitempty"`
	CreationTimestamp          string               `json:"creationTimestamp,omitempty"`
	DeletionTimestamp          *string              `json:"deletionTimestamp,omitempty"`
	DeletionGracePeriodSeconds *int64               `json:"deletionGracePeriodSeconds,omitempty"`
	Labels                     map[string]string    `json:"labels,omitempty"`
	Annotations                map[string]string    `json:"annotations,omitempty"`
	OwnerReferences            []OwnerReference     `json:"ownerReferences,omitempty"`
	Finalizers                 []string             `json:"finalizers,omitempty"`
	ManagedFields              []ManagedFieldsEntry `json:"managedFields,omitempty"`
}

// ---- k8s.io/api core/v1: Node ----

type Taint struct {
	Key       string  `json:"key"`
	Value     string  `json:"value,omitempty"`
	Effect    string  `json:"effect"`
	TimeAdded *string `json:"timeAdded,omitempty"`
}

type NodeSpec struct {
	PodCIDR       string   `json:"podCIDR,omitempty"`
	PodCIDRs      []string `json:"podCIDRs,omitempty"`
	ProviderID    string   `json:"providerID,omitempty"`
	Unschedulable bool     `json:"unschedulable,omitempty"`
	Taints        []Taint  `json:"taints,omitempty"`
}

type NodeCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	LastHeartbeatTime  string `json:"lastHeartbeatTime,omitempty"`
	LastTransitionTime string `json:"lastTransitionTime,omitempty"`
	Reason             string `json:"reason,omitempty"`
	Message            string `json:"message,omitempty"`
}

type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

type DaemonEndpoint struct {
	Port int32 `json:"Port"`
}

type NodeDaemonEndpoints struct {
	KubeletEndpoint DaemonEndpoint `json:"kubeletEndpoint,omitempty"`
}

type NodeSystemInfo struct {
	MachineID               string `json:"machineID"`
	SystemUUID              string `json:"systemUUID"`
	BootID                  string `json:"bootID"`
	KernelVersion           string `json:"kernelVersion"`
	OSImage                 string `json:"osImage"`
	ContainerRuntimeVersion string `json:"containerRuntimeVersion"`
	KubeletVersion          string `json:"kubeletVersion"`
	KubeProxyVersion        string `json:"kubeProxyVersion"`
	OperatingSystem         string `json:"operatingSystem"`
	Architecture            string `json:"architecture"`
}

type ContainerImage struct {
	Names     []string `json:"names"`
	SizeBytes int64    `json:"sizeBytes,omitempty"`
}

type AttachedVolume struct {
	Name       string `json:"name"`
	DevicePath string `json:"devicePath"`
}

type NodeStatus struct {
	Capacity        map[string]string   `json:"capacity,omitempty"`
	Allocatable     map[string]string   `json:"allocatable,omitempty"`
	Phase           string              `json:"phase,omitempty"`
	Conditions      []NodeCondition     `json:"conditions,omitempty"`
	Addresses       []NodeAddress       `json:"addresses,omitempty"`
	DaemonEndpoints NodeDaemonEndpoints `json:"daemonEndpoints,omitempty"`
	NodeInfo        NodeSystemInfo      `json:"nodeInfo,omitempty"`
	Images          []ContainerImage    `json:"images,omitempty"`
	VolumesInUse    []string            `json:"volumesInUse,omitempty"`
	VolumesAttached []AttachedVolume    `json:"volumesAttached,omitempty"`
}

type Node struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       NodeSpec   `json:"spec,omitempty"`
	Status     NodeStatus `json:"status,omitempty"`
}

type NodeList struct {
	TypeMeta `json:",inline"`
	ListMeta `json:"metadata,omitempty"`
	Items    []Node `json:"items"`
}

// ---- k8s.io/api core/v1: Pod (the fields kube-scheduler's pods carry) ----

type KeyToPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
	Mode *int32 `json:"mode,omitempty"`
}

type ObjectFieldSelector struct {
	APIVersion string `json:"apiVersion,omitempty"`
	FieldPath  string `json:"fieldPath"`
}

type VolumeProjection struct {
	ServiceAccountToken *struct {
		Audience          string `json:"audience,omitempty"`
		ExpirationSeconds *int64 `json:"expirationSeconds,omitempty"`
		Path              string `json:"path"`
	} `json:"serviceAccountToken,omitempty"`
	ConfigMap *struct {
		Name  string      `json:"name,omitempty"`
		Items []KeyToPath `json:"items,omitempty"`
	} `json:"configMap,omitempty"`
	DownwardAPI *struct {
		Items []struct {
			Path     string               `json:"path"`
			FieldRef *ObjectFieldSelector `json:"fieldRef,omitempty"`
		} `json:"items,omitempty"`
	} `json:"downwardAPI,omitempty"`
}

type Volume struct {
	Name      string `json:"name"`
	Projected *struct {
		Sources     []VolumeProjection `json:"sources"`
		DefaultMode *int32             `json:"defaultMode,omitempty"`
	} `json:"projected,omitempty"`
	EmptyDir *struct {
		Medium string `json:"medium,omitempty"`
	} `json:"emptyDir,omitempty"`
}

type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

type ResourceRequirements struct {
	Limits   map[string]string `json:"limits,omitempty"`
	Requests map[string]string `json:"requests,omitempty"`
}

type VolumeMount struct {
	Name      string `json:"name"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	MountPath string `json:"mountPath"`
	SubPath   string `json:"subPath,omitempty"`
}

type Container struct {
	Name                     string               `json:"name"`
	Image                    string               `json:"image,omitempty"`
	Command                  []string             `json:"command,omitempty"`
	Args                     []string             `json:"args,omitempty"`
	WorkingDir               string               `json:"workingDir,omitempty"`
	Env                      []EnvVar             `json:"env,omitempty"`
	Resources                ResourceRequirements `json:"resources,omitempty"`
	VolumeMounts             []VolumeMount        `json:"volumeMounts,omitempty"`
	TerminationMessagePath   string               `json:"terminationMessagePath,omitempty"`
	TerminationMessagePolicy string               `json:"terminationMessagePolicy,omitempty"`
	ImagePullPolicy          string               `json:"imagePullPolicy,omitempty"`
}

type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

type PodSpec struct {
	Volumes                       []Volume          `json:"volumes,omitempty"`
	InitContainers                []Container       `json:"initContainers,omitempty"`
	Containers                    []Container       `json:"containers"`
	RestartPolicy                 string            `json:"restartPolicy,omitempty"`
	TerminationGracePeriodSeconds *int64            `json:"terminationGracePeriodSeconds,omitempty"`
	DNSPolicy                     string            `json:"dnsPolicy,omitempty"`
	NodeSelector                  map[string]string `json:"nodeSelector,omitempty"`
	ServiceAccountName            string            `json:"serviceAccountName,omitempty"`
	DeprecatedServiceAccount      string            `json:"serviceAccount,omitempty"`
	NodeName                      string            `json:"nodeName,omitempty"`
	SecurityContext               *struct{}         `json:"securityContext,omitempty"`
	SchedulerName                 string            `json:"schedulerName,omitempty"`
	Tolerations                   []Toleration      `json:"tolerations,omitempty"`
	PriorityClassName             string            `json:"priorityClassName,omitempty"`
	Priority                      *int32            `json:"priority,omitempty"`
	EnableServiceLinks            *bool             `json:"enableServiceLinks,omitempty"`
	PreemptionPolicy              *string           `json:"preemptionPolicy,omitempty"`
}

type PodCondition struct {
	Type               string  `json:"type"`
	Status             string  `json:"status"`
	LastProbeTime      *string `json:"lastProbeTime"`
	LastTransitionTime string  `json:"lastTransitionTime,omitempty"`
	Reason             string  `json:"reason,omitempty"`
	Message            string  `json:"message,omitempty"`
}

type PodStatus struct {
	Phase             string            `json:"phase,omitempty"`
	Conditions        []PodCondition    `json:"conditions,omitempty"`
	Message           string            `json:"message,omitempty"`
	Reason            string            `json:"reason,omitempty"`
	NominatedNodeName string            `json:"nominatedNodeName,omitempty"`
	HostIP            string            `json:"hostIP,omitempty"`
	PodIP             string            `json:"podIP,omitempty"`
	StartTime         *string           `json:"startTime,omitempty"`
	QOSClass          string            `json:"qosClass,omitempty"`
	ContainerStatuses []json.RawMessage `json:"containerStatuses,omitempty"`
}

type Pod struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       PodSpec   `json:"spec,omitempty"`
	Status     PodStatus `json:"status,omitempty"`
}

// ---- k8s.io/kube-scheduler extender/v1 (no JSON tags, as upstream) ----

type ExtenderArgs struct {
	Pod       *Pod
	Nodes     *NodeList
	NodeNames *[]string
}

type ExtenderFilterResult struct {
	Nodes                      *NodeList
	NodeNames                  *[]string
	FailedNodes                map[string]string
	FailedAndUnresolvableNodes map[string]string
	Error                      string
}

type HostPriority struct {
	Host  string
	Score int64
}

const gpuResource = "nvidia.com/gpu"

// podGPUs is the pod's nvidia.com/gpu request: requests, else limits, summed over containers.
func podGPUs(p *Pod) int64 {
	var n int64
	for _, c := range p.Spec.Containers {
		q, ok := c.Resources.Requests[gpuResource]
		if !ok {
			q = c.Resources.Limits[gpuResource]
		}
		v, _ := strconv.ParseInt(q, 10, 64)
		n += v
	}
	return n
}

func nodeGPUs(n *Node) int64 {
	v, _ := strconv.ParseInt(n.Status.Allocatable[gpuResource], 10, 64)
	return v
}

func decode(w http.ResponseWriter, r *http.Request) (*ExtenderArgs, bool) {
	var args ExtenderArgs
	if err := json.NewDecoder(r.Body).Decode(&args); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	if args.Pod == nil || args.Nodes == nil {
		http.Error(w, "this baseline serves full-Nodes requests only", http.StatusBadRequest)
		return nil, false
	}
	return &args, true
}

func filter(w http.ResponseWriter, r *http.Request) {
	args, ok := decode(w, r)
	if !ok {
		return
	}
	want := podGPUs(args.Pod)
	res := ExtenderFilterResult{
		Nodes:                      &NodeList{Items: make([]Node, 0, len(args.Nodes.Items))},
		FailedNodes:                map[string]string{},
		FailedAndUnresolvableNodes: map[string]string{},
	}
	for i := range args.Nodes.Items {
		n := &args.Nodes.Items[i]
		if nodeGPUs(n) >= want {
			res.Nodes.Items = append(res.Nodes.Items, *n)
		} else {
			res.FailedAndUnresolvableNodes[n.Name] = "go-baseline: not enough nvidia.com/gpu"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(&res); err != nil {
		log.Printf("filter: %v", err)
	}
}

func prioritize(w http.ResponseWriter, r *http.Request) {
	args, ok := decode(w, r)
	if !ok {
		return
	}
	want := podGPUs(args.Pod)
	out := make([]HostPriority, 0, len(args.Nodes.Items))
	for i := range args.Nodes.Items {
		n := &args.Nodes.Items[i]
		var score int64
		if a := nodeGPUs(n); a > 0 && a >= want {
			score = 10 * (want) / a // binpack: the fuller the node ends up, the better
		}
		out = append(out, HostPriority{Host: n.Name, Score: score})
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		log.Printf("prioritize: %v", err)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	portFile := flag.String("port-file", "", "write the bound port here")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *portFile != "" {
		tmp := *portFile + ".tmp"
		port := ln.Addr().(*net.TCPAddr).Port
		if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d\n", port)), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *portFile); err != nil {
			log.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/filter", filter)
	mux.HandleFunc("/prioritize", prioritize)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	log.Fatal(http.Serve(ln, mux))
}

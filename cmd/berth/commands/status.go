package commands

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/cluster"
	"github.com/berth-dev/berth/cluster/create"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/cmd/berth/internal/dockerstats"
	"github.com/berth-dev/berth/cmd/berth/ui"
)

// StatusOptions are the options of `berth status`.
type StatusOptions struct {
	*Globals
	Name     string
	Output   string
	Interval time.Duration
	Watch    bool

	p       provider.Provider
	stats   *dockerstats.Client
	mu      sync.Mutex
	client  kubernetes.Interface
	server  string
	maxWarn int
}

func newStatusCommand(g *Globals) *cobra.Command {
	o := &StatusOptions{Globals: g, maxWarn: 8}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a cluster live: nodes, CPU and memory, pods per node, warnings",
		Long: `Show a cluster: its nodes with role and readiness, the CPU and memory each
node container uses, the pods on each node, and recent warning events.

At a terminal the view refreshes every 2 seconds until you press q.
Without a terminal (or with -o) one snapshot is printed.`,
		Example: `  berth status
  berth status --name dev -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(cmd); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	addNameFlag(cmd, &o.Name)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "print one snapshot as json or yaml")
	cmd.Flags().DurationVar(&o.Interval, "interval", 2*time.Second, "time between refreshes of the live view")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Complete resolves the cluster and connects.
func (o *StatusOptions) Complete(cmd *cobra.Command) error {
	ctx := cmd.Context()
	if err := resolveCluster(ctx, o.Globals, cmd, &o.Name); err != nil {
		return err
	}
	p, err := o.Provider(ctx)
	if err != nil {
		return err
	}
	o.p = p
	if _, err := cluster.Nodes(ctx, p, o.Name); err != nil {
		return err
	}
	if o.stats, err = dockerstats.New(); err != nil {
		return err
	}
	return nil
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error {
	switch o.Output {
	case "", "json", "yaml":
	default:
		return fmt.Errorf("unknown output format %q: use json or yaml", o.Output)
	}
	if o.Interval < 200*time.Millisecond {
		return fmt.Errorf("--interval must be at least 200ms, got %v", o.Interval)
	}
	return nil
}

// Run prints a snapshot, or shows the live view at a terminal.
func (o *StatusOptions) Run(ctx context.Context) error {
	defer o.stats.Close()
	if o.Output == "" && !o.Quiet && ui.Interactive(o.In, o.Out) {
		m := ui.NewStatusModel(ctx, o.Snapshot, o.Interval, ui.NewTheme(ui.ColorEnabled(o.Out, o.NoColor)))
		if _, err := ui.RunFullscreen(ctx, o.In, o.Out, m); err != nil {
			return fmt.Errorf("showing the status of cluster %q: %w", o.Name, err)
		}
		return nil
	}
	s, err := o.Snapshot(ctx)
	if err != nil {
		return err
	}
	switch o.Output {
	case "json":
		return writeJSON(o.Out, s)
	case "yaml":
		data, err := yaml.Marshal(s)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(data)
		return err
	}
	_, err = fmt.Fprint(o.Out, ui.RenderSnapshot(s, ui.NewTheme(ui.ColorEnabled(o.Out, o.NoColor)), 0))
	return err
}

func (o *StatusOptions) kube(ctx context.Context) (kubernetes.Interface, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.client != nil {
		return o.client, o.server, nil
	}
	kc, err := cluster.Kubeconfig(ctx, o.p, o.Name)
	if err != nil {
		return nil, "", err
	}
	rc, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading the kubeconfig of cluster %q: %w", o.Name, err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, "", fmt.Errorf("creating a client for cluster %q: %w", o.Name, err)
	}
	for _, c := range kc.Clusters {
		o.server = c.Server
	}
	o.client = client
	return o.client, o.server, nil
}

// Snapshot reads the cluster once. Parts that cannot be read are listed
// in Problems; only a cluster without nodes is an error.
func (o *StatusOptions) Snapshot(ctx context.Context) (*ui.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	containers, err := cluster.Nodes(ctx, o.p, o.Name)
	if err != nil {
		return nil, err
	}
	s := &ui.Snapshot{Cluster: o.Name, Time: time.Now(), Nodes: []ui.NodeStatus{}, Warnings: []ui.WarningEvent{}}

	var names []string
	for _, c := range containers {
		if c.State == "running" {
			names = append(names, c.Name)
		}
	}
	var (
		wg       sync.WaitGroup
		usage    map[string]dockerstats.Usage
		usageErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		usage, usageErr = o.stats.UsageOf(ctx, names)
	}()

	var (
		nodes  = map[string]*corev1.Node{}
		pods   = map[string][2]int{}
		kubeOK bool
		// allocated sums extended-resource requests per node.
		allocated = map[string]map[corev1.ResourceName]int64{}
	)
	client, server, err := o.kube(ctx)
	if err != nil {
		s.Problems = append(s.Problems, "cannot reach the API server: "+err.Error())
	} else {
		s.Server = server
		if u, err := parseHost(server); err == nil {
			s.Server = u
		}
		if list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			s.Problems = append(s.Problems, "listing nodes: "+err.Error())
		} else {
			kubeOK = true
			for i := range list.Items {
				nodes[list.Items[i].Name] = &list.Items[i]
			}
		}
		if list, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{}); err != nil {
			s.Problems = append(s.Problems, "listing pods: "+err.Error())
		} else {
			for _, p := range list.Items {
				if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
					continue
				}
				for _, ctr := range p.Spec.Containers {
					for r, q := range ctr.Resources.Requests {
						if isDeviceResource(r) {
							if allocated[p.Spec.NodeName] == nil {
								allocated[p.Spec.NodeName] = map[corev1.ResourceName]int64{}
							}
							allocated[p.Spec.NodeName][r] += q.Value()
						}
					}
				}
				c := pods[p.Spec.NodeName]
				c[0]++
				if podReady(&p) {
					c[1]++
				}
				pods[p.Spec.NodeName] = c
			}
		}
		s.Warnings = o.warnings(ctx, client, s)
	}
	wg.Wait()
	if usageErr != nil {
		s.Problems = append(s.Problems, usageErr.Error())
	}

	for _, c := range containers {
		n := ui.NodeStatus{Name: c.Name, Role: c.Role, Container: c.State, IP: c.IP, Status: "Unknown", CPUPercent: -1}
		if kn := nodes[c.Name]; kn != nil {
			n.Status = "NotReady"
			if create.NodeReady(kn) {
				n.Status = "Ready"
			}
			if kn.Spec.Unschedulable {
				n.Status += ",SchedulingDisabled"
			}
			n.Version = kn.Status.NodeInfo.KubeletVersion
			for r, q := range kn.Status.Allocatable {
				if isDeviceResource(r) {
					n.Devices = append(n.Devices, ui.DeviceStatus{Resource: string(r), Allocatable: q.Value(), Allocated: allocated[c.Name][r]})
				}
			}
			sort.Slice(n.Devices, func(i, j int) bool { return n.Devices[i].Resource < n.Devices[j].Resource })
		} else if kubeOK && c.State == "running" {
			n.Status = "NotRegistered"
		}
		if u, ok := usage[c.Name]; ok {
			n.CPUPercent, n.MemoryBytes, n.MemoryLimit = u.CPUPercent, u.MemoryBytes, u.MemoryLimit
		}
		p := pods[c.Name]
		n.Pods, n.PodsReady = p[0], p[1]
		s.Nodes = append(s.Nodes, n)
	}
	return s, nil
}

func (o *StatusOptions) warnings(ctx context.Context, client kubernetes.Interface, s *ui.Snapshot) []ui.WarningEvent {
	list, err := client.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("type", corev1.EventTypeWarning).String(),
	})
	if err != nil {
		s.Problems = append(s.Problems, "listing events: "+err.Error())
		return []ui.WarningEvent{}
	}
	out := []ui.WarningEvent{}
	for _, e := range list.Items {
		t := e.LastTimestamp.Time
		if t.IsZero() {
			t = e.EventTime.Time
		}
		if t.IsZero() {
			t = e.CreationTimestamp.Time
		}
		if time.Since(t) > time.Hour {
			continue
		}
		out = append(out, ui.WarningEvent{
			Time: t, Namespace: e.InvolvedObject.Namespace, Reason: e.Reason, Message: e.Message, Count: e.Count,
			Object: fmt.Sprintf("%s/%s", strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	if len(out) > o.maxWarn {
		out = out[:o.maxWarn]
	}
	return out
}

// isDeviceResource tells an extended resource served by a device plugin
// (domain/name outside kubernetes.io) from cpu, memory, pods and the
// like.
func isDeviceResource(r corev1.ResourceName) bool {
	domain, _, ok := strings.Cut(string(r), "/")
	return ok && domain != "kubernetes.io" && !strings.HasSuffix(domain, ".kubernetes.io")
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// parseHost returns host:port of an https URL.
func parseHost(server string) (string, error) {
	const prefix = "https://"
	if len(server) <= len(prefix) || server[:len(prefix)] != prefix {
		return "", fmt.Errorf("not an https URL: %q", server)
	}
	host, port, err := net.SplitHostPort(server[len(prefix):])
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
}

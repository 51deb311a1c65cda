package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/completion"
	"sigs.k8s.io/yaml"

	"github.com/berth-dev/berth/kubectl-like/prompt"
)

// ForceForwardEnv, set to 1, makes `berth service` always port-forward
// instead of trying the node or load balancer addresses.
const ForceForwardEnv = "BERTH_FORCE_FORWARD"

// Options holds everything `berth service` needs.
type Options struct {
	Name      string
	Namespace string

	URLOnly bool
	One     bool
	Format  string
	Open    bool
	Forward bool
	// Output is "", "wide", "json" or "yaml".
	Output string

	// ForceForward skips the reachability check and port-forwards
	// (BERTH_FORCE_FORWARD=1).
	ForceForward bool
	// DialTimeout bounds each TCP connection attempt.
	DialTimeout time.Duration
	// Wait bounds the wait for the Service to have a ready endpoint and
	// its URLs to accept connections (--wait; 0: do not wait).
	Wait time.Duration
	// PollInterval is how often the wait checks again.
	PollInterval time.Duration
	// NoticeAfter is how long the wait stays silent before it says on
	// stderr what it is waiting for.
	NoticeAfter time.Duration

	Client kubernetes.Interface
	// Forwarder opens port-forwards; SPDYForwarder by default.
	Forwarder Forwarder
	// Dial is used for the reachability check.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// OpenURL opens a URL in a browser.
	OpenURL func(url string) error
	// WaitForStop blocks while a port-forward is up; by default until ctx
	// ends or the process receives SIGINT/SIGTERM.
	WaitForStop func(ctx context.Context, done <-chan error) error

	// Prompt picks the service when none is named (nil: nobody is at a
	// terminal).
	Prompt prompt.Chooser

	tmpl *template.Template
	genericiooptions.IOStreams
}

// DefaultWait is how long `berth service` waits for a new Service's URLs
// to answer unless --wait says otherwise.
const DefaultWait = 10 * time.Second

// NewOptions returns Options with berth's defaults; c picks the service
// when none is named (nil: nobody is at a terminal).
func NewOptions(streams genericiooptions.IOStreams, c prompt.Chooser) *Options {
	return &Options{
		Format:       DefaultFormat,
		DialTimeout:  time.Second,
		Wait:         DefaultWait,
		PollInterval: 250 * time.Millisecond,
		NoticeAfter:  2 * time.Second,
		Prompt:       c,
		IOStreams:    streams,
	}
}

// NewCmdService returns the service command; c picks the service when none
// is named (nil: nobody is at a terminal).
func NewCmdService(f cmdutil.Factory, streams genericiooptions.IOStreams, c prompt.Chooser) *cobra.Command {
	o := NewOptions(streams, c)
	cmd := &cobra.Command{
		Use:   "service [NAME]",
		Short: "Print the URLs at which this host reaches a Service",
		Long: `Print the URLs at which this host reaches a Service.

NodePort services are reached at every node's InternalIP on the node port (one
URL per node and port; --one prints only the first). LoadBalancer services are
reached at their ingress address once one is assigned (before that, at their
node ports). ClusterIP services are only reachable inside the cluster: the
command explains how to reach them, or with --forward opens a port-forward on
127.0.0.1 to a ready pod of the service and keeps it open until Ctrl-C.

When the node addresses cannot be reached from this host (a TCP connection to
the first one fails within about a second, or BERTH_FORCE_FORWARD=1 is set),
the command falls back to such a port-forward and says so on stderr. So it
does when the nodes answer but a load balancer address never does.

Right after a Service is created its URLs may not answer yet. Before it
prints them, the command waits, up to --wait, until the Service has a ready
endpoint and every URL it prints accepts a TCP connection (a port-forward
waits for a ready pod). When that takes more than about two seconds it says
on stderr what it is waiting for; when --wait passes first it prints the
URLs anyway, with a warning.

Without NAME, the namespace's only service is used; with several, you pick
one at a terminal (without a terminal the command fails and lists them).

--format is a Go template over each URL's fields: {{.IP}} {{.Port}} {{.Name}}
(the service port's name) {{.Namespace}} {{.Service}} {{.ServicePort}}
{{.NodePort}} {{.TargetPort}} {{.Protocol}} {{.Node}} {{.Via}} {{.HostPort}}.`,
		Example: `  # URLs of service web in the current namespace
  berth service web --url

  # A single URL, for scripts
  curl "$(berth service web --url --one)"

  # Plain host:port pairs
  berth service web --url --format '{{.IP}}:{{.Port}}'

  # Reach a ClusterIP service through 127.0.0.1 until Ctrl-C
  berth service web --forward`,
		Args:              cobra.MaximumNArgs(1),
		SilenceUsage:      true,
		ValidArgsFunction: completion.ResourceNameCompletionFunc(f, "service"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.URLOnly, "url", false, "Print only the URLs, one per line.")
	fl.BoolVar(&o.One, "one", false, "Print only the first URL.")
	fl.StringVar(&o.Format, "format", DefaultFormat, "Go template for each URL.")
	fl.BoolVar(&o.Open, "open", false, "Open the URL (the first of each port) in a browser with xdg-open or open.")
	fl.BoolVar(&o.Forward, "forward", false, "Port-forward the service's TCP ports to 127.0.0.1 and keep the forward open until Ctrl-C.")
	fl.StringVarP(&o.Output, "output", "o", "", "Output format: wide, json or yaml. Default is a table.")
	fl.DurationVar(&o.Wait, "wait", DefaultWait, "How long to wait for the Service to have a ready endpoint and its URLs to accept connections (0: do not wait).")
	return cmd
}

// Complete fills the options from the command line and the factory.
func (o *Options) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("at most one service NAME may be given, got %d arguments", len(args))
	}
	if len(args) == 1 {
		o.Name = args[0]
	}
	var err error
	if o.Namespace == "" {
		if o.Namespace, _, err = f.ToRawKubeConfigLoader().Namespace(); err != nil {
			return fmt.Errorf("determining the namespace: %w", err)
		}
	}
	if os.Getenv(ForceForwardEnv) == "1" {
		o.ForceForward = true
	}
	if o.Client == nil {
		if o.Client, err = f.KubernetesClientSet(); err != nil {
			return fmt.Errorf("creating client: %w", err)
		}
	}
	if o.Forwarder == nil {
		cfg, err := f.ToRESTConfig()
		if err != nil {
			return fmt.Errorf("loading client configuration: %w", err)
		}
		o.Forwarder = &SPDYForwarder{Config: cfg, Client: o.Client, ErrOut: o.ErrOut}
	}
	if o.Name == "" {
		return o.pickService(cmd.Context())
	}
	return nil
}

// pickService chooses the service when none was named: the namespace's
// only one, or the one a person picks at a terminal.
func (o *Options) pickService(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	list, err := o.Client.CoreV1().Services(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing services in namespace %q to pick one: %w", o.Namespace, err)
	}
	var names []string
	for _, svc := range list.Items {
		names = append(names, svc.Name)
	}
	sort.Strings(names)
	chooser := o.Prompt
	if chooser == nil {
		chooser = prompt.NoTerminal{Notes: o.ErrOut}
	}
	o.Name, err = chooser.Choose(ctx, prompt.Choice{
		What:       "service",
		Candidates: names,
		Hint:       fmt.Sprintf("name it: berth service NAME (in namespace %s; another with -n NAMESPACE)", o.Namespace),
	})
	return err
}

// Validate checks the options and parses --format.
func (o *Options) Validate() error {
	switch o.Output {
	case "", "wide", "json", "yaml":
	default:
		return fmt.Errorf("unsupported output format %q: use wide, json or yaml", o.Output)
	}
	if o.URLOnly && o.Output != "" {
		return errors.New("--url and --output may not be specified together")
	}
	if o.Wait < 0 {
		return fmt.Errorf("--wait must not be negative, got %v", o.Wait)
	}
	tmpl, err := ParseFormat(o.Format)
	if err != nil {
		return err
	}
	o.tmpl = tmpl
	return nil
}

// Run looks up the service and prints (and possibly opens, or forwards) its URLs.
func (o *Options) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.tmpl == nil {
		if err := o.Validate(); err != nil {
			return err
		}
	}
	svc, err := o.Client.CoreV1().Services(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("getting service %s/%s: %w", o.Namespace, o.Name, err)
	}
	if o.Forward {
		return o.runForward(ctx, svc)
	}

	var nodes []corev1.Node
	if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		list, err := o.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing nodes: %w", err)
		}
		nodes = list.Items
	}
	targets, note, err := Targets(svc, nodes)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintf(o.ErrOut, "note: %s\n", note)
	}

	if targets[0].Via == ViaNodePort || targets[0].Via == ViaLoadBalancer {
		if o.ForceForward {
			fmt.Fprintf(o.ErrOut, "%s=1: forwarding service %s/%s through 127.0.0.1 instead of %s\n",
				ForceForwardEnv, o.Namespace, o.Name, hostPort(targets[0]))
			return o.runForward(ctx, svc)
		}
		// Node addresses are out of reach where containers are not
		// routable from the host (Docker Desktop on macOS, a remote
		// engine): a port-forward through the API server still works.
		probe := probeAddress(svc, nodes, targets)
		if err := o.reachable(ctx, probe); err != nil {
			fmt.Fprintf(o.ErrOut, "%s is not reachable from this host (%v); forwarding service %s/%s through 127.0.0.1 instead\n",
				probe, err, o.Namespace, o.Name)
			return o.runForward(ctx, svc)
		}
		outcome, err := o.waitForURLs(ctx, svc, o.shown(targets))
		if err != nil {
			return err
		}
		if outcome == forwardInstead {
			fmt.Fprintf(o.ErrOut, "load balancer address %s does not answer from this host although its nodes do; forwarding service %s/%s through 127.0.0.1 instead\n",
				hostPort(targets[0]), o.Namespace, o.Name)
			return o.runForward(ctx, svc)
		}
	}
	if err := Render(o.tmpl, targets); err != nil {
		return err
	}
	return o.show(targets)
}

// shown returns the targets show prints.
func (o *Options) shown(targets []Target) []Target {
	if o.One && len(targets) > 1 {
		return targets[:1]
	}
	return targets
}

// show prints targets and opens them when asked.
func (o *Options) show(targets []Target) error {
	targets = o.shown(targets)
	switch {
	case o.URLOnly:
		for _, t := range targets {
			fmt.Fprintln(o.Out, t.URL)
		}
	case o.Output == "json":
		b, err := json.MarshalIndent(targets, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding JSON: %w", err)
		}
		fmt.Fprintln(o.Out, string(b))
	case o.Output == "yaml":
		b, err := yaml.Marshal(targets)
		if err != nil {
			return fmt.Errorf("encoding YAML: %w", err)
		}
		fmt.Fprint(o.Out, string(b))
	default:
		w := tabwriter.NewWriter(o.Out, 0, 8, 3, ' ', 0)
		if o.Output == "wide" {
			fmt.Fprintln(w, "NAMESPACE\tSERVICE\tPORT\tVIA\tNODE\tTARGET PORT\tURL")
		} else {
			fmt.Fprintln(w, "NAMESPACE\tSERVICE\tPORT\tURL")
		}
		for _, t := range targets {
			port := fmt.Sprintf("%d/%s", t.ServicePort, t.Protocol)
			if t.Name != "" {
				port = t.Name + " " + port
			}
			if o.Output == "wide" {
				node := t.Node
				if node == "" {
					node = "<none>"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Namespace, t.Service, port, t.Via, node, t.TargetPort, t.URL)
			} else {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Namespace, t.Service, port, t.URL)
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if o.Open {
		o.open(FirstPerPort(targets))
	}
	return nil
}

func (o *Options) open(targets []Target) {
	opener := o.OpenURL
	if opener == nil {
		opener = openInBrowser
	}
	for _, t := range targets {
		if err := opener(t.URL); err != nil {
			fmt.Fprintf(o.ErrOut, "warning: could not open %s: %v\n", t.URL, err)
		}
	}
}

// openInBrowser starts xdg-open (or open on macOS) on url without waiting
// for the browser.
func openInBrowser(url string) error {
	candidates := []string{"xdg-open", "open"}
	if runtime.GOOS == "darwin" {
		candidates = []string{"open", "xdg-open"}
	}
	for _, name := range candidates {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		cmd := exec.Command(path, url)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", name, err)
		}
		go func() { _ = cmd.Wait() }()
		return nil
	}
	return errors.New("neither xdg-open nor open is installed; open the URL yourself")
}

// runForward port-forwards the service's TCP ports to 127.0.0.1, prints the
// local URLs and keeps the forward open until ctx ends or Ctrl-C.
func (o *Options) runForward(ctx context.Context, svc *corev1.Service) error {
	pod, err := o.waitForPod(ctx, svc)
	if err != nil {
		return err
	}
	mappings, skipped, err := PortMappings(svc, pod)
	if err != nil {
		return err
	}
	for _, p := range skipped {
		fmt.Fprintf(o.ErrOut, "warning: not forwarding %s port %d: port-forward only supports TCP\n", p.Protocol, p.Port)
	}
	var podPorts []int32
	seen := map[int32]bool{}
	for _, m := range mappings {
		if !seen[m.PodPort] {
			seen[m.PodPort] = true
			podPorts = append(podPorts, m.PodPort)
		}
	}

	fwdCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	local, done, err := o.Forwarder.Forward(fwdCtx, pod, podPorts)
	if err != nil {
		return fmt.Errorf("forwarding to pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	localFor := map[int32]int32{}
	for i, p := range podPorts {
		localFor[p] = local[i]
	}
	targets := make([]Target, 0, len(mappings))
	for _, m := range mappings {
		t := baseTarget(svc, m.ServicePort)
		t.IP, t.Port, t.Via = "127.0.0.1", localFor[m.PodPort], ViaPortForward
		t.TargetPort = strconv.Itoa(int(m.PodPort))
		targets = append(targets, t)
	}
	if err := Render(o.tmpl, targets); err != nil {
		return err
	}
	for _, t := range targets {
		fmt.Fprintf(o.ErrOut, "forwarding 127.0.0.1:%d -> pod %s/%s port %s\n", t.Port, pod.Namespace, pod.Name, t.TargetPort)
	}
	if err := o.show(targets); err != nil {
		return err
	}
	fmt.Fprintln(o.ErrOut, "port-forward is open; press Ctrl-C to stop")
	wait := o.WaitForStop
	if wait == nil {
		wait = waitForSignal
	}
	return wait(fwdCtx, done)
}

// waitForSignal blocks until ctx ends, SIGINT/SIGTERM arrives (a clean
// stop), or the forward fails.
func waitForSignal(ctx context.Context, done <-chan error) error {
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-sigCtx.Done():
		return nil
	case err := <-done:
		if err != nil {
			return fmt.Errorf("port-forward stopped: %w", err)
		}
		return errors.New("port-forward stopped")
	}
}

// Command reliability beats on berth and prints one table: scenario,
// runs, passed, what was lost or leaked. Each scenario runs at most -runs
// times and the whole run stops at -timeout. It drives the berth binary
// (built from this tree) and the Docker CLI, as a user or a CI job would.
//
//	go run ./bench/reliability -scenario all -runs 3 -timeout 40m
//
// Scenarios: cycles, components, worker-stop, concurrent, same-name,
// kubeconfig-race, disk-full, and daemon-restart (opt-in:
// -allow-docker-restart; it restarts the Docker engine every cluster on
// the machine runs in). See docs/reliability.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// result is one row of the table.
type result struct {
	scenario string
	runs     int
	passed   int
	leaked   []string
	notes    []string
}

type harness struct {
	berth      string
	kubeconfig string
	prefix     string
	image      string
	deadline   time.Time
	verbose    bool
	diskSize   string
}

var scenarios = []string{"cycles", "components", "worker-stop", "concurrent", "same-name", "kubeconfig-race", "disk-full", "daemon-restart"}

func main() {
	scenario := flag.String("scenario", "all", "scenario to run: all, or one of "+strings.Join(scenarios, ", "))
	runs := flag.Int("runs", 3, "runs per scenario (the issue's figures: cycles 50, components 20)")
	timeout := flag.Duration("timeout", 30*time.Minute, "stop starting runs after this long")
	prefix := flag.String("prefix", "relb", "cluster name prefix (names are PREFIX-<scenario>-<n>)")
	image := flag.String("image", "", "node image (default: berth's default)")
	allowRestart := flag.Bool("allow-docker-restart", false, "run daemon-restart: restarts the Docker engine (every container on it stops); never on a shared machine")
	diskSize := flag.String("disk-size", "1200m", "disk-full: size of the tmpfs given to the node as /var")
	verbose := flag.Bool("v", false, "log every command")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout+5*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "berth-reliability-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(tmp)
	h := &harness{berth: filepath.Join(tmp, "berth"), kubeconfig: filepath.Join(tmp, "kubeconfig"), prefix: *prefix,
		image: *image, deadline: time.Now().Add(*timeout), verbose: *verbose, diskSize: *diskSize}
	build := exec.CommandContext(ctx, "go", "build", "-o", h.berth, "./cmd/berth")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fatal(fmt.Errorf("building berth (run from the repository root): %w", err))
	}
	want := scenarios
	if *scenario != "all" {
		want = strings.Split(*scenario, ",")
	}
	var results []result
	for _, s := range want {
		if s == "daemon-restart" && !*allowRestart {
			if *scenario != "all" {
				fmt.Fprintln(os.Stderr, "daemon-restart restarts the Docker engine: pass -allow-docker-restart")
			}
			results = append(results, result{scenario: s, notes: []string{"skipped (needs -allow-docker-restart)"}})
			continue
		}
		fn := map[string]func(context.Context, int) result{
			"cycles": h.cycles, "components": h.components, "worker-stop": h.workerStop, "concurrent": h.concurrent,
			"same-name": h.sameName, "kubeconfig-race": h.kubeconfigRace, "disk-full": h.diskFull, "daemon-restart": h.daemonRestart,
		}[s]
		if fn == nil {
			fatal(fmt.Errorf("unknown scenario %q (know: %s)", s, strings.Join(scenarios, ", ")))
		}
		started := time.Now()
		r := fn(ctx, *runs)
		r.scenario = s
		r.notes = append(r.notes, fmt.Sprintf("%s", time.Since(started).Round(time.Second)))
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "== %s: %d/%d passed\n", s, r.passed, r.runs)
	}
	print(results)
}

func print(results []result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRUNS\tPASSED\tLOST/LEAKED\tNOTES")
	for _, r := range results {
		leaked := "0"
		if len(r.leaked) > 0 {
			leaked = strings.Join(r.leaked, "; ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", r.scenario, r.runs, r.passed, leaked, strings.Join(r.notes, "; "))
	}
	tw.Flush()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

func (h *harness) timeLeft() bool { return time.Now().Before(h.deadline) }

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// run runs berth with args and returns its combined output.
func (h *harness) run(ctx context.Context, args ...string) (string, error) {
	cmd := h.cmd(ctx, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if h.verbose {
		h.logf("berth %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

func (h *harness) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.berth, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.kubeconfig, "CI=true", "NO_COLOR=1")
	return cmd
}

func (h *harness) createArgs(name string, workers int) []string {
	args := []string{"create", "cluster", "--name", name, "-q"}
	if workers > 0 {
		cfg := fmt.Sprintf("apiVersion: berth.dev/v1alpha1\nkind: Cluster\nnodes:\n- role: control-plane\n%s", strings.Repeat("- role: worker\n", workers))
		path := filepath.Join(filepath.Dir(h.kubeconfig), name+".yaml")
		_ = os.WriteFile(path, []byte(cfg), 0o600)
		args = append(args, "--config", path)
	}
	if h.image != "" {
		args = append(args, "--image", h.image)
	}
	return args
}

func (h *harness) create(ctx context.Context, name string, workers int) error {
	out, err := h.run(ctx, append(h.createArgs(name, workers), "--wait", "5m")...)
	if err != nil {
		return fmt.Errorf("create %s: %w: %s", name, err, out)
	}
	return nil
}

func (h *harness) delete(ctx context.Context, name string) error {
	out, err := h.run(context.WithoutCancel(ctx), "delete", "cluster", "--name", name, "--yes", "-q")
	if err != nil {
		return fmt.Errorf("delete %s: %w: %s", name, err, out)
	}
	return nil
}

func docker(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// leaks lists what is left of cluster name: containers, networks and
// volumes labelled with it, its kubeconfig entries, a kubeconfig lock
// file, and files named after it in berth's cache directory (berth keeps
// no per-cluster state files; this checks it stays so).
func (h *harness) leaks(ctx context.Context, name string) []string {
	var left []string
	for _, kind := range []string{"container", "network", "volume"} {
		args := []string{kind, "ls", "-q", "--filter", "label=berth.dev/cluster=" + name}
		if kind == "container" {
			args = []string{"ps", "-aq", "--filter", "label=berth.dev/cluster=" + name}
		}
		if out, err := docker(ctx, args...); err == nil && out != "" {
			left = append(left, fmt.Sprintf("%s: %d %s(s)", name, len(strings.Fields(out)), kind))
		}
	}
	if data, err := os.ReadFile(h.kubeconfig); err == nil && bytes.Contains(data, []byte("berth-"+name+"\n")) {
		left = append(left, name+": kubeconfig entry")
	}
	if _, err := os.Stat(h.kubeconfig + ".lock"); err == nil {
		left = append(left, "kubeconfig lock file")
	}
	if cache, err := os.UserCacheDir(); err == nil {
		_ = filepath.WalkDir(filepath.Join(cache, "berth"), func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.Contains(filepath.Base(p), name) {
				left = append(left, name+": state file "+p)
			}
			return nil
		})
	}
	return left
}

// cycles: create/delete cycles, alternately 1 node and 1+2; a fifth of
// the creates get SIGINT and a fifth SIGKILL at a random moment. After a
// SIGINT the create must have removed everything itself; after a SIGKILL
// `berth get clusters` must show the cluster as incomplete and `berth
// delete cluster` must remove every trace.
func (h *harness) cycles(ctx context.Context, runs int) result {
	var r result
	var ints, kills int
	for i := 0; i < runs && h.timeLeft(); i++ {
		r.runs++
		name := fmt.Sprintf("%s-cyc-%d", h.prefix, i)
		workers := 0
		if i%2 == 1 {
			workers = 2
		}
		var sig os.Signal
		switch i % 5 {
		case 1:
			sig = os.Interrupt
		case 3:
			sig = syscall.SIGKILL
		}
		ok, problem, signalled := h.cycle(ctx, name, workers, sig)
		if signalled && sig == os.Interrupt {
			ints++
		} else if signalled && sig == syscall.SIGKILL {
			kills++
		}
		if left := h.leaks(ctx, name); len(left) > 0 {
			r.leaked = append(r.leaked, left...)
			ok = false
			_ = h.delete(ctx, name)
		}
		if ok {
			r.passed++
		} else {
			r.notes = append(r.notes, fmt.Sprintf("run %d: %s", i, problem))
		}
	}
	r.notes = append(r.notes, fmt.Sprintf("%d SIGINT, %d SIGKILL delivered during a create", ints, kills))
	return r
}

// cycle creates and deletes one cluster, sending sig (if any) to the
// create at a random moment; signalled tells whether it arrived before
// the create ended.
func (h *harness) cycle(ctx context.Context, name string, workers int, sig os.Signal) (ok bool, problem string, signalled bool) {
	if sig == nil {
		if err := h.create(ctx, name, workers); err != nil {
			_ = h.delete(ctx, name)
			return false, err.Error(), false
		}
		if err := h.delete(ctx, name); err != nil {
			return false, err.Error(), false
		}
		return true, "", false
	}
	cmd := h.cmd(ctx, append(h.createArgs(name, workers), "--wait", "5m")...)
	if err := cmd.Start(); err != nil {
		return false, err.Error(), false
	}
	// Within the create's usual length (5–10 s here), so most signals
	// land while it runs.
	delay := time.Duration(300+rand.IntN(6700)) * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		// No signal was sent: an ordinary cycle, whose delete must
		// leave nothing (checked by the caller).
		h.logf("%s: create ended before the signal (%v)", name, err)
		if err := h.delete(ctx, name); err != nil {
			return false, err.Error(), false
		}
		return true, "", false
	case <-time.After(delay):
		_ = cmd.Process.Signal(sig)
		<-done
	}
	if sig == os.Interrupt {
		// The create must have undone everything itself (the kubeconfig
		// entry included); only then is the cluster deleted.
		if left := h.leaks(ctx, name); len(left) > 0 {
			_ = h.delete(ctx, name)
			return false, fmt.Sprintf("SIGINT after %s left %s", delay, strings.Join(left, ", ")), true
		}
		return true, "", true
	}
	// SIGKILL: whatever is left must be listed as incomplete.
	out, _ := h.run(ctx, "get", "clusters", "-o", "wide")
	c, _ := docker(ctx, "ps", "-aq", "--filter", "label=berth.dev/cluster="+name)
	n, _ := docker(ctx, "network", "ls", "-q", "--filter", "label=berth.dev/cluster="+name)
	if (c != "" || n != "") && !lineHas(out, name, "incomplete") && !lineHas(out, name, "complete") {
		_ = h.delete(ctx, name)
		return false, fmt.Sprintf("SIGKILL after %s: cluster not listed: %s", delay, out), true
	}
	if (c != "" || n != "") && !lineHas(out, name, "incomplete") {
		// The create may have finished just before the kill.
		h.logf("%s: killed after %s, listed complete", name, delay)
	}
	if err := h.delete(ctx, name); err != nil {
		return false, err.Error(), true
	}
	return true, "", true
}

func lineHas(out, name, word string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == name && strings.Contains(l, word) {
			return true
		}
	}
	return false
}

// concurrent: two creates of different clusters at the same time; both
// must succeed.
func (h *harness) concurrent(ctx context.Context, runs int) result {
	var r result
	for i := 0; i < runs && h.timeLeft(); i++ {
		r.runs++
		a, b := fmt.Sprintf("%s-cca-%d", h.prefix, i), fmt.Sprintf("%s-ccb-%d", h.prefix, i)
		errs := parallel(func() error { return h.create(ctx, a, 0) }, func() error { return h.create(ctx, b, 0) })
		ok := errs[0] == nil && errs[1] == nil
		for _, e := range errs {
			if e != nil {
				r.notes = append(r.notes, e.Error())
			}
		}
		_ = h.delete(ctx, a)
		_ = h.delete(ctx, b)
		r.leaked = append(r.leaked, h.leaks(ctx, a)...)
		r.leaked = append(r.leaked, h.leaks(ctx, b)...)
		if ok {
			r.passed++
		}
	}
	return r
}

// sameName: two creates of one name at the same time: exactly one
// succeeds, the other fails saying why, and the winner is intact.
func (h *harness) sameName(ctx context.Context, runs int) result {
	var r result
	for i := 0; i < runs && h.timeLeft(); i++ {
		r.runs++
		name := fmt.Sprintf("%s-same-%d", h.prefix, i)
		outs := make([]string, 2)
		errs := parallel(
			func() error {
				var err error
				outs[0], err = h.run(ctx, append(h.createArgs(name, 0), "--wait", "5m")...)
				return err
			},
			func() error {
				var err error
				outs[1], err = h.run(ctx, append(h.createArgs(name, 0), "--wait", "5m")...)
				return err
			},
		)
		wins := 0
		for _, e := range errs {
			if e == nil {
				wins++
			}
		}
		ok := wins == 1
		if ok {
			loser := outs[0]
			if errs[1] != nil {
				loser = outs[1]
			}
			if !strings.Contains(loser, "being created by another berth") {
				ok = false
				r.notes = append(r.notes, "loser's message: "+firstLine(loser))
			}
			if out, err := h.run(ctx, "get", "nodes", "--name", name); err != nil || !strings.Contains(out, "Ready") {
				ok = false
				r.notes = append(r.notes, "winner damaged: "+firstLine(out))
			}
		} else {
			r.notes = append(r.notes, fmt.Sprintf("run %d: %d creates succeeded", i, wins))
		}
		_ = h.delete(ctx, name)
		r.leaked = append(r.leaked, h.leaks(ctx, name)...)
		if ok {
			r.passed++
		}
	}
	return r
}

// kubeconfigRace: two creates and a delete racing on one kubeconfig; the
// delete's context and a context of the user's own are there before.
// Afterwards both new contexts exist, the deleted one is gone, the user's
// is untouched and the file parses.
func (h *harness) kubeconfigRace(ctx context.Context, runs int) result {
	var r result
	for i := 0; i < runs && h.timeLeft(); i++ {
		r.runs++
		a, b, gone := fmt.Sprintf("%s-kca-%d", h.prefix, i), fmt.Sprintf("%s-kcb-%d", h.prefix, i), fmt.Sprintf("%s-kcx-%d", h.prefix, i)
		own := "apiVersion: v1\nkind: Config\nclusters:\n- name: mine\n  cluster:\n    server: https://mine.example:6443\n- name: berth-" + gone + "\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: mine\n  context:\n    cluster: mine\n    user: mine\n- name: berth-" + gone + "\n  context:\n    cluster: berth-" + gone + "\n    user: berth-" + gone + "\nusers:\n- name: mine\n  user:\n    token: secret\n- name: berth-" + gone + "\n  user:\n    token: x\ncurrent-context: mine\n"
		if err := os.WriteFile(h.kubeconfig, []byte(own), 0o600); err != nil {
			r.notes = append(r.notes, err.Error())
			continue
		}
		errs := parallel(func() error { return h.create(ctx, a, 0) }, func() error { return h.create(ctx, b, 0) },
			func() error {
				time.Sleep(time.Duration(rand.IntN(8000)) * time.Millisecond)
				return h.delete(ctx, gone)
			})
		ok := true
		for _, e := range errs {
			if e != nil {
				ok = false
				r.notes = append(r.notes, firstLine(e.Error()))
			}
		}
		out, err := h.run(ctx, "kubectl", "--", "config", "get-contexts", "-o", "name")
		ctxs := strings.Fields(out)
		for _, want := range []string{"mine", "berth-" + a, "berth-" + b} {
			if err != nil || !slices.Contains(ctxs, want) {
				ok = false
				r.leaked = append(r.leaked, "lost context "+want)
			}
		}
		if slices.Contains(ctxs, "berth-"+gone) {
			ok = false
			r.leaked = append(r.leaked, "deleted context berth-"+gone+" came back")
		}
		if data, _ := os.ReadFile(h.kubeconfig); !bytes.Contains(data, []byte("token: secret")) {
			ok = false
			r.leaked = append(r.leaked, "user's credentials changed")
		}
		_ = h.delete(ctx, a)
		_ = h.delete(ctx, b)
		r.leaked = append(r.leaked, h.leaks(ctx, a)...)
		r.leaked = append(r.leaked, h.leaks(ctx, b)...)
		if ok {
			r.passed++
		}
	}
	return r
}

func parallel(fns ...func() error) []error {
	errs := make([]error, len(fns))
	done := make(chan struct{}, len(fns))
	for i, fn := range fns {
		go func() { errs[i] = fn(); done <- struct{}{} }()
	}
	for range fns {
		<-done
	}
	return errs
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// workload is a Deployment of two busybox httpd replicas (busybox is in
// the node image: nothing to pull), a PodDisruptionBudget and a NodePort
// Service.
const workload = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: docker.io/library/busybox:1.35-berth
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
`

func (h *harness) deployWorkload(ctx context.Context, name string) error {
	cmd := h.cmd(ctx, "kubectl", "--", "--context=berth-"+name, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(workload)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("applying the workload: %w: %s", err, out)
	}
	if out, err := h.run(ctx, "kubectl", "--", "--context=berth-"+name, "rollout", "status", "deployment/web", "--timeout=3m"); err != nil {
		return fmt.Errorf("workload not ready: %w: %s", err, out)
	}
	return nil
}

// prober GETs url every 100 ms and records failures with their times.
type prober struct {
	url      string
	stop     chan struct{}
	done     chan struct{}
	total    int
	failures []time.Time
}

func probe(url string) *prober {
	p := &prober{url: url, stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: time.Second}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			p.total++
			resp, err := client.Get(p.url)
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				p.failures = append(p.failures, time.Now())
			}
		}
	}()
	return p
}

func (p *prober) finish() { close(p.stop); <-p.done }

// failuresOutside counts failures outside the windows.
func (p *prober) failuresOutside(windows [][2]time.Time) int {
	n := 0
	for _, f := range p.failures {
		inside := false
		for _, w := range windows {
			if !f.Before(w[0]) && !f.After(w[1]) {
				inside = true
			}
		}
		if !inside {
			n++
		}
	}
	return n
}

func nodeIP(ctx context.Context, node string) string {
	ip, _ := docker(ctx, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", node)
	return ip
}

// component is how a component runs inside a node, and how to kill it.
type component struct {
	name string
	// pattern finds its process (pgrep -f); "" means the node's PID 1.
	pattern string
}

// components lists the processes berth-node supervises. The pod network
// agent runs inside berth-node itself (PID 1 of the node): killing it is
// killing the node container (SIGKILL to its init from the host), which
// Docker restarts (restart policy unless-stopped).
var components = []component{
	{"etcd", "berth-node etcd"},
	{"kube-apiserver", "berth-node kube-apiserver"},
	{"kube-scheduler", "berth-node kube-scheduler"},
	{"kube-controller-manager", "berth-node kube-controller-manager"},
	{"kubelet", "berth-node kubelet"},
	{"kube-proxy", "berth-node kube-proxy"},
	{"containerd", "containerd --config"},
	{"pod-network-agent (berth-node PID 1)", ""},
}

// components: on a running 1-node cluster with the workload, each
// component is SIGKILLed -runs times; time until back (its process again,
// the API server answering, the Service answering) is recorded, and
// Service failures outside [kill, back] count as lost requests.
func (h *harness) components(ctx context.Context, runs int) result {
	var r result
	name := h.prefix + "-comp"
	node := name + "-control-plane"
	if err := h.create(ctx, name, 0); err != nil {
		r.notes = append(r.notes, err.Error())
		_ = h.delete(ctx, name)
		return r
	}
	defer func() { _ = h.delete(ctx, name); r.leaked = append(r.leaked, h.leaks(ctx, name)...) }()
	if err := h.deployWorkload(ctx, name); err != nil {
		r.notes = append(r.notes, err.Error())
		return r
	}
	p := probe("http://" + nodeIP(ctx, node) + ":30080/index.html")
	var windows [][2]time.Time
	for _, c := range components {
		var took []time.Duration
		for i := 0; i < runs && h.timeLeft(); i++ {
			r.runs++
			before, _ := docker(ctx, "exec", node, "pgrep", "-f", c.pattern)
			killed := time.Now()
			var err error
			if c.pattern == "" {
				// From the host: inside the node, PID 1 ignores SIGKILL;
				// `docker kill` counts as a manual stop, after which
				// Docker's restart policy does not restart the node.
				var pid string
				if pid, err = docker(ctx, "inspect", "-f", "{{.State.Pid}}", node); err == nil {
					err = exec.CommandContext(ctx, "kill", "-9", pid).Run()
				}
			} else {
				_, err = docker(ctx, "exec", node, "pkill", "-9", "-f", c.pattern)
			}
			if err != nil {
				r.notes = append(r.notes, fmt.Sprintf("%s: kill: %v", c.name, err))
				continue
			}
			back, err := h.waitBack(ctx, name, node, c, before, 3*time.Minute)
			windows = append(windows, [2]time.Time{killed, time.Now().Add(2 * time.Second)})
			if err != nil {
				r.notes = append(r.notes, fmt.Sprintf("%s: %v", c.name, err))
				continue
			}
			took = append(took, back)
			r.passed++
		}
		if len(took) > 0 {
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			r.notes = append(r.notes, fmt.Sprintf("%s back median %s max %s", c.name, took[len(took)/2].Round(100*time.Millisecond), took[len(took)-1].Round(100*time.Millisecond)))
		}
	}
	p.finish()
	lost := p.failuresOutside(windows)
	r.notes = append(r.notes, fmt.Sprintf("service: %d/%d requests failed, %d outside the kill windows", len(p.failures), p.total, lost))
	if lost > 0 {
		r.leaked = append(r.leaked, fmt.Sprintf("%d service requests failed outside the windows", lost))
	}
	// Objects made before the faults are all there.
	if out, err := h.run(ctx, "kubectl", "--", "--context=berth-"+name, "get", "deployment/web", "pdb/web", "service/web", "-o", "name"); err != nil || strings.Count(out, "/web") != 3 {
		r.leaked = append(r.leaked, "workload objects lost: "+firstLine(out))
	}
	return r
}

// waitBack waits until component c runs again (a new process), the API
// server answers, the node is Ready and the Service answers.
func (h *harness) waitBack(ctx context.Context, name, node string, c component, before string, within time.Duration) (time.Duration, error) {
	start := time.Now()
	url := "http://" + nodeIP(ctx, node) + ":30080/index.html"
	client := &http.Client{Timeout: time.Second}
	for time.Since(start) < within {
		time.Sleep(200 * time.Millisecond)
		if c.pattern != "" {
			now, err := docker(ctx, "exec", node, "pgrep", "-f", c.pattern)
			if err != nil || now == "" || now == before {
				continue
			}
		}
		if out, err := h.run(ctx, "kubectl", "--", "--context=berth-"+name, "get", "--raw", "/readyz"); err != nil || !strings.Contains(out, "ok") {
			continue
		}
		if out, err := h.run(ctx, "get", "nodes", "--name", name); err != nil || strings.Contains(out, "NotReady") {
			continue
		}
		resp, err := client.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("not back within %s", within)
}

// workerStop: a 1+2 cluster with the workload; one worker's container is
// stopped. Its pods must be replaced on the other worker (berth keeps the
// upstream node-monitor-grace-period, 50 s, and the default 300 s
// not-ready/unreachable tolerations: about 6 minutes), then the worker,
// started again, must rejoin Ready.
func (h *harness) workerStop(ctx context.Context, runs int) result {
	var r result
	for i := 0; i < runs && h.timeLeft(); i++ {
		r.runs++
		name := fmt.Sprintf("%s-ws-%d", h.prefix, i)
		ok, why := h.workerStopOnce(ctx, name)
		_ = h.delete(ctx, name)
		r.leaked = append(r.leaked, h.leaks(ctx, name)...)
		if ok {
			r.passed++
		}
		r.notes = append(r.notes, why)
	}
	return r
}

func (h *harness) workerStopOnce(ctx context.Context, name string) (bool, string) {
	if err := h.create(ctx, name, 2); err != nil {
		return false, err.Error()
	}
	if err := h.deployWorkload(ctx, name); err != nil {
		return false, err.Error()
	}
	kc := "--context=berth-" + name
	out, _ := h.run(ctx, "kubectl", "--", kc, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].spec.nodeName}")
	victim := strings.TrimSpace(out)
	if victim == "" {
		return false, "no pod placed"
	}
	stopped := time.Now()
	if _, err := docker(ctx, "stop", victim); err != nil {
		return false, err.Error()
	}
	var moved time.Duration
	for time.Since(stopped) < 10*time.Minute {
		time.Sleep(5 * time.Second)
		out, _ := h.run(ctx, "kubectl", "--", kc, "get", "pods", "-l", "app=web", "--field-selector=status.phase=Running", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp}{\"\\n\"}{end}")
		healthy := 0
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 1 && f[0] != victim {
				healthy++
			}
		}
		if healthy >= 2 {
			moved = time.Since(stopped)
			break
		}
	}
	if _, err := docker(ctx, "start", victim); err != nil {
		return false, err.Error()
	}
	rejoined := time.Now()
	for time.Since(rejoined) < 3*time.Minute {
		time.Sleep(2 * time.Second)
		if out, err := h.run(ctx, "get", "nodes", "--name", name); err == nil && !strings.Contains(out, "NotReady") && !strings.Contains(out, "Unknown") {
			if moved == 0 {
				return false, "pods not rescheduled within 10m; worker rejoined"
			}
			return true, fmt.Sprintf("pods rescheduled after %s; worker Ready %s after start", moved.Round(time.Second), time.Since(rejoined).Round(time.Second))
		}
	}
	return false, fmt.Sprintf("rescheduled after %s; worker not Ready 3m after start", moved.Round(time.Second))
}

// diskFull: the node's /var (where containerd keeps images) is a
// size-limited tmpfs volume made before the create (berth reuses a volume
// of the node's name); an image larger than what is left is loaded. The
// load must fail with a clear error and the node keep working.
func (h *harness) diskFull(ctx context.Context, runs int) result {
	var r result
	for i := 0; i < runs && h.timeLeft(); i++ {
		r.runs++
		name := fmt.Sprintf("%s-disk-%d", h.prefix, i)
		vol := name + "-control-plane-var"
		// No berth label: the name check would take it for leftovers.
		if out, err := docker(ctx, "volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size="+h.diskSize, vol); err != nil {
			r.notes = append(r.notes, "tmpfs volume: "+out)
			continue
		}
		ok, why := h.diskFullOnce(ctx, name)
		if err := h.delete(ctx, name); err != nil {
			why += "; " + firstLine(err.Error())
		}
		if out, err := docker(ctx, "volume", "rm", "-f", vol); err != nil {
			why += "; removing the tmpfs volume: " + out
		}
		r.leaked = append(r.leaked, h.leaks(ctx, name)...)
		if ok {
			r.passed++
		}
		r.notes = append(r.notes, why)
	}
	return r
}

func (h *harness) diskFullOnce(ctx context.Context, name string) (bool, string) {
	if err := h.create(ctx, name, 0); err != nil {
		return false, firstLine(err.Error())
	}
	node := name + "-control-plane"
	free, _ := docker(ctx, "exec", node, "df", "-m", "/var")
	// The largest local images, until one fails to fit.
	images := []string{"registry.k8s.io/e2e-test-images/agnhost:2.55", "registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2", "registry.k8s.io/e2e-test-images/kitten:1.8", "registry.k8s.io/e2e-test-images/nautilus:1.8"}
	var loadErr string
	var before, after int64
	var imagesBefore []string
	for _, img := range images {
		before, _ = availMB(ctx, node)
		imagesBefore = nodeImages(ctx, node)
		out, err := h.run(ctx, "load", "image", img, "--name", name, "-q")
		if err != nil {
			loadErr = firstLine(out)
			break
		}
	}
	if loadErr == "" {
		return false, "every image fit; use a smaller -disk-size (df: " + lastLine(free) + ")"
	}
	clear := strings.Contains(strings.ToLower(loadErr), "space")
	// The node must be left as it was: its free space back (within what
	// its own components write meanwhile) and the same images.
	after, _ = availMB(ctx, node)
	imagesAfter := nodeImages(ctx, node)
	if before-after > 16 || !slices.Equal(imagesAfter, imagesBefore) {
		return false, fmt.Sprintf("load: %s; the failed load left data on the node: /var had %d MB free before, %d MB after; images before %v, after %v", loadErr, before, after, imagesBefore, imagesAfter)
	}
	// The helper image has sh but not every applet (no true).
	out, err := h.run(ctx, "kubectl", "--", "--context=berth-"+name, "run", "after", "--image=docker.io/library/busybox:1.35-berth", "--image-pull-policy=Never", "--restart=Never", "--command", "--", "sh", "-c", "exit 0")
	if err == nil {
		out, err = h.run(ctx, "kubectl", "--", "--context=berth-"+name, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/after", "--timeout=2m")
	}
	if err != nil {
		return false, "load: " + loadErr + "; node broken after the full disk: " + firstLine(out)
	}
	if !clear {
		return false, "load failed without saying the disk is full: " + loadErr
	}
	return true, fmt.Sprintf("load refused: %s; /var free %d MB before the load, %d MB after; a new pod ran", loadErr, before, after)
}

// nodeImages lists the images in a node's containerd (k8s.io namespace).
func nodeImages(ctx context.Context, node string) []string {
	out, _ := exec.CommandContext(ctx, "docker", "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q").Output()
	return strings.Fields(string(out))
}

// availMB returns the MB free on a node's /var.
func availMB(ctx context.Context, node string) (int64, error) {
	out, err := docker(ctx, "exec", node, "df", "-m", "--output=avail", "/var")
	if err != nil {
		return 0, fmt.Errorf("df in %s: %w: %s", node, err, out)
	}
	return strconv.ParseInt(strings.TrimSpace(lastLine(out)), 10, 64)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// daemonRestart: a 1-node and a 1+2 cluster with the workload and a PVC;
// the Docker engine is restarted (systemctl, or the dockerd process); both
// must be Ready again, the Services answer and the PVC data survive.
func (h *harness) daemonRestart(ctx context.Context, runs int) result {
	var r result
	for i := 0; i < runs && h.timeLeft(); i++ {
		r.runs++
		a, b := fmt.Sprintf("%s-dr1-%d", h.prefix, i), fmt.Sprintf("%s-dr3-%d", h.prefix, i)
		ok, why := h.daemonRestartOnce(ctx, a, b)
		_ = h.delete(ctx, a)
		_ = h.delete(ctx, b)
		r.leaked = append(r.leaked, h.leaks(ctx, a)...)
		r.leaked = append(r.leaked, h.leaks(ctx, b)...)
		if ok {
			r.passed++
		}
		r.notes = append(r.notes, why)
	}
	return r
}

const pvcPod = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 64Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer, namespace: default}
spec:
  containers:
  - name: w
    image: docker.io/library/busybox:1.35-berth
    imagePullPolicy: Never
    command: ["sh", "-c", "[ -f /data/f ] || echo kept > /data/f; exec sleep 100000"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
`

func (h *harness) daemonRestartOnce(ctx context.Context, a, b string) (bool, string) {
	for _, c := range []struct {
		name    string
		workers int
	}{{a, 0}, {b, 2}} {
		if err := h.create(ctx, c.name, c.workers); err != nil {
			return false, err.Error()
		}
		if err := h.deployWorkload(ctx, c.name); err != nil {
			return false, err.Error()
		}
		cmd := h.cmd(ctx, "kubectl", "--", "--context=berth-"+c.name, "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(pvcPod)
		if out, err := cmd.CombinedOutput(); err != nil {
			return false, string(out)
		}
		if out, err := h.run(ctx, "kubectl", "--", "--context=berth-"+c.name, "wait", "--for=condition=Ready", "pod/writer", "--timeout=3m"); err != nil {
			return false, out
		}
	}
	if err := restartDocker(ctx); err != nil {
		return false, err.Error()
	}
	for _, n := range []string{a, b} {
		kc := "--context=berth-" + n
		deadline := time.Now().Add(5 * time.Minute)
		for {
			out, err := h.run(ctx, "kubectl", "--", kc, "exec", "writer", "--", "cat", "/data/f")
			if err == nil && strings.Contains(out, "kept") {
				break
			}
			if time.Now().After(deadline) {
				return false, n + ": PVC data not readable after the restart: " + firstLine(out)
			}
			time.Sleep(3 * time.Second)
		}
		// The Service answers once its pods are Ready again, which may
		// trail the PVC pod's exec by some seconds.
		cp := n + "-control-plane"
		client := &http.Client{Timeout: 2 * time.Second}
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
			resp, err := client.Get("http://" + nodeIP(ctx, cp) + ":30080/index.html")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				return false, n + ": service: " + err.Error()
			}
		}
	}
	return true, "both clusters back, services answer, PVC data intact"
}

func restartDocker(ctx context.Context) error {
	if err := exec.CommandContext(ctx, "systemctl", "restart", "docker").Run(); err == nil {
		return nil
	}
	// No systemd (containers, sandboxes): stop dockerd and start it again.
	if err := exec.CommandContext(ctx, "pkill", "-TERM", "-x", "dockerd").Run(); err != nil {
		return fmt.Errorf("stopping dockerd: %w", err)
	}
	for i := 0; i < 60; i++ {
		if exec.Command("pgrep", "-x", "dockerd").Run() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err := exec.Command("sh", "-c", "nohup dockerd >>/var/log/berth-dockerd.log 2>&1 &").Run(); err != nil {
		return err
	}
	for i := 0; i < 60; i++ {
		if exec.Command("docker", "info").Run() == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return errors.New("dockerd did not come back within 60s")
}

// Command timetok8s measures berth the way minikube's time-to-k8s
// benchmark measures kind, k3d and minikube, so the figures compare: the
// create command itself, then the API server answering, the kubernetes
// Service present, the kube-dns Service present, a small app Deployment
// running and answering on its port, and DNS answering from inside that
// pod. It also records the CPU seconds the whole machine spent during the
// create (/proc/stat, so node containers count), the delete time, each
// node container's idle memory and the node image size. It prints
// medians over -runs runs.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-dev/berth/bench/internal/proccpu"
	"github.com/berth-dev/berth/cluster/provider/docker"
	"github.com/berth-dev/berth/nodeimage/versions"
)

const helloRef = "berth-bench/hello:1"

// dnsRetries counts the in-pod lookups that failed before the first
// answer (the app's resolver retries every 100 ms).
const dnsRetries = "DNS lookups failed before the first answer"

// cpuPrefix marks a sample's per-process CPU seconds.
const cpuPrefix = "cpu: "

func main() {
	runs := flag.Int("runs", 3, "number of runs (medians are printed)")
	workers := flag.Int("workers", 0, "worker nodes besides the control plane")
	berth := flag.String("berth", "bin/berth", "berth binary")
	idle := flag.Duration("idle", 60*time.Second, "how long the cluster idles after create before memory is read (the issue's definition: 60 s)")
	flag.Parse()
	if *keep && *runs != 1 {
		fmt.Fprintln(os.Stderr, "bench: -keep needs -runs 1 (each run makes a cluster of the same name)")
		os.Exit(2)
	}
	if err := run(*berth, *runs, *workers, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type sample map[string]float64

var phases = []string{"create command", "API server answering", "kubernetes Service", "kube-dns Service", "app running and answering", "DNS answering in pod", "total (time-to-k8s)", "CPU seconds during create", "delete", "idle MiB control-plane node", "idle MiB worker node"}

func run(berth string, runs, workers int, idle time.Duration) error {
	ctx := context.Background()
	p, err := docker.New(ctx, slog.Default())
	if err != nil {
		return err
	}
	if err := helloImage(ctx, p); err != nil {
		return err
	}
	kubeconfig := filepath.Join(os.TempDir(), "berth-bench-kubeconfig")
	os.Setenv("KUBECONFIG", kubeconfig)
	var samples []sample
	for i := 1; i <= runs; i++ {
		s, err := once(ctx, berth, workers, idle, kubeconfig)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		samples = append(samples, s)
		fmt.Fprintf(os.Stderr, "run %d: total %.2fs, create %.2fs, app %.2fs, DNS lookups failed before the first answer %.0f, delete %.2fs\n", i, s["total (time-to-k8s)"], s["create command"], s["app running and answering"], s[dnsRetries], s["delete"])
	}
	fmt.Printf("berth time-to-k8s, %d node(s) (1 control plane, %d workers), median of %d runs, %d cores\n", 1+workers, workers, runs, numCPU())
	for _, ph := range phases {
		var vals []float64
		for _, s := range samples {
			if v, ok := s[ph]; ok {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			continue
		}
		unit := "s"
		if strings.HasPrefix(ph, "idle MiB") {
			unit = " MiB"
		}
		fmt.Printf("  %-30s %8.2f%s   (runs: %s)\n", ph, median(vals), unit, join(vals))
	}
	groups := map[string][]float64{}
	for _, s := range samples {
		for k, v := range s {
			if g, ok := strings.CutPrefix(k, cpuPrefix); ok {
				groups[g] = append(groups[g], v)
			}
		}
	}
	proccpu.Print(os.Stdout, "  CPU seconds during create, by process (create → DNS answering; medians):", groups)
	if size, err := imageSize(); err == nil {
		fmt.Printf("  %-30s %8.0f MB\n", "node image (unpacked)", size/1e6)
	}
	return nil
}

// configFile is passed to create (e.g. a file with networking.loadBalancer
// false, to measure what an add-on costs).
var configFile = flag.String("config", "", "cluster configuration file passed to create --config")

// clusterName and nodeImage let runs beside other clusters (or of another
// node image) use their own.
var (
	clusterName = flag.String("name", "bench", "cluster name")
	nodeImage   = flag.String("image", "", "node image passed to create --image (default: the release's)")
	keep        = flag.Bool("keep", false, "keep the cluster after the run (with -runs 1) to read its nodes' logs")
)

func once(ctx context.Context, berth string, workers int, idle time.Duration, kubeconfig string) (sample, error) {
	s := sample{}
	name := *clusterName
	cpu0 := proccpu.Busy()
	procs0 := proccpu.Take()
	start := time.Now()
	args := []string{"create", "cluster", "--name", name, "--wait", "0", "-q"}
	if workers > 0 {
		args = append(args, "--workers", strconv.Itoa(workers))
	}
	if *configFile != "" {
		args = append(args, "--config", *configFile)
	}
	if *nodeImage != "" {
		args = append(args, "--image", *nodeImage)
	}
	create := exec.Command(berth, args...)
	if out, err := create.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("create: %v: %s", err, out)
	}
	if *keep {
		// The cluster stays for a look at its logs; one run only.
		defer fmt.Fprintf(os.Stderr, "  cluster %s kept (-keep)\n", name)
	} else {
		defer exec.Command(berth, "delete", "cluster", "--name", name).Run()
	}
	cliCPU := create.ProcessState.UserTime() + create.ProcessState.SystemTime()
	s["create command"] = since(start)
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{CurrentContext: "berth-" + name}).ClientConfig()
	if err != nil {
		return nil, err
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	var trace *tracer
	if *traceFlag {
		traceCtx, stop := context.WithCancel(ctx)
		defer stop()
		trace = &tracer{start: start}
		trace.mark("create command returned")
		trace.watchAll(traceCtx, client)
	}
	wait := func(phase string, check func() bool) error {
		deadline := time.Now().Add(3 * time.Minute)
		for !check() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: timed out", phase)
			}
			time.Sleep(50 * time.Millisecond)
		}
		s[phase] = since(start)
		if trace != nil {
			trace.mark(phase)
		}
		return nil
	}
	if err := wait("API server answering", func() bool {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil
	}); err != nil {
		return nil, err
	}
	for _, svc := range []struct{ phase, ns, name string }{{"kubernetes Service", "default", "kubernetes"}, {"kube-dns Service", "kube-system", "kube-dns"}} {
		if err := wait(svc.phase, func() bool {
			_, err := client.CoreV1().Services(svc.ns).Get(ctx, svc.name, metav1.GetOptions{})
			return err == nil
		}); err != nil {
			return nil, err
		}
	}
	// The image must be in the nodes before the app can run; loading is
	// part of the measured path, as pulling is for the peers.
	load := exec.Command(berth, "load", "image", helloRef, "--name", name, "-q")
	if out, err := load.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("load: %v: %s", err, out)
	}
	cliCPU += load.ProcessState.UserTime() + load.ProcessState.SystemTime()
	if trace != nil {
		trace.mark("image loaded")
	}
	port, nodeIP, err := deploy(ctx, client, name)
	if err != nil {
		return nil, err
	}
	if trace != nil {
		trace.mark("app Deployment and Service created")
	}
	httpc := &http.Client{Timeout: time.Second}
	if err := wait("app running and answering", func() bool {
		resp, err := httpc.Get(fmt.Sprintf("http://%s:%d/", nodeIP, port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}); err != nil {
		return nil, err
	}
	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
	if err != nil || len(pods.Items) == 0 {
		return nil, fmt.Errorf("finding the app pod: %v", err)
	}
	pod := pods.Items[0]
	if err := wait("DNS answering in pod", func() bool {
		out, err := exec.Command(berth, "kubectl", "--context", "berth-"+name, "--", "exec", pod.Name, "--", "/hello", "lookup", "hello.default.svc.cluster.local").CombinedOutput()
		if s[dnsRetries] == 0 && bytes.Contains(out, []byte("lookup failed")) {
			first, _, _ := bytes.Cut(out, []byte("\n"))
			fmt.Fprintf(os.Stderr, "  in-pod lookup still failing at %.2fs: %s\n", since(start), first)
		}
		s[dnsRetries] += float64(bytes.Count(out, []byte("lookup failed")))
		return err == nil && len(bytes.TrimSpace(out)) > 0
	}); err != nil {
		return nil, err
	}
	s["total (time-to-k8s)"] = s["DNS answering in pod"]
	s["CPU seconds during create"] = proccpu.Busy() - cpu0
	attributed := cliCPU.Seconds()
	s[cpuPrefix+"berth CLI (create, load image)"] = cliCPU.Seconds()
	for group, v := range proccpu.Since(procs0) {
		s[cpuPrefix+group] = v
		attributed += v
	}
	s[cpuPrefix+proccpu.Unattributed] = s["CPU seconds during create"] - attributed

	time.Sleep(idle)
	for node, mib := range memory(name) {
		if strings.Contains(node, "control-plane") {
			s["idle MiB control-plane node"] = mib
		} else {
			s["idle MiB worker node"] = mib
		}
	}
	if *keep {
		return s, nil
	}
	del := time.Now()
	if out, err := exec.Command(berth, "delete", "cluster", "--name", name, "-q").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("delete: %v: %s", err, out)
	}
	s["delete"] = since(del)
	return s, nil
}

func deploy(ctx context.Context, client kubernetes.Interface, cluster string) (int32, string, error) {
	labels := map[string]string{"app": "hello"}
	one := int32(1)
	_, err := client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: helloRef, ImagePullPolicy: corev1.PullNever}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return 0, "", err
	}
	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return 0, "", err
	}
	out, err := exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cluster+"-control-plane").Output()
	if err != nil {
		return 0, "", err
	}
	return svc.Spec.Ports[0].NodePort, strings.TrimSpace(string(out)), nil
}

func helloImage(ctx context.Context, p *docker.Provider) error {
	bin := filepath.Join(os.TempDir(), "berth-bench-hello")
	build := exec.Command("go", "build", "-o", bin, "./testdata/hello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building hello: %v: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg})
	_, _ = tw.Write(data)
	_ = tw.Close()
	return p.ImportImage(ctx, &buf, helloRef, []string{`ENTRYPOINT ["/hello"]`})
}

// memory reads each node container's memory use as docker stats shows it.
func memory(cluster string) map[string]float64 {
	out, err := exec.Command("docker", "stats", "--no-stream", "--format", "{{json .}}").Output()
	if err != nil {
		return nil
	}
	res := map[string]float64{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var row struct{ Name, MemUsage string }
		if err := dec.Decode(&row); err == io.EOF || err != nil {
			break
		}
		if !strings.HasPrefix(row.Name, cluster+"-") {
			continue
		}
		used := strings.TrimSpace(strings.SplitN(row.MemUsage, "/", 2)[0])
		res[row.Name] = parseMiB(used)
	}
	return res
}

func parseMiB(s string) float64 {
	units := map[string]float64{"KiB": 1.0 / 1024, "MiB": 1, "GiB": 1024, "B": 1.0 / 1024 / 1024}
	for _, u := range []string{"KiB", "MiB", "GiB", "B"} {
		if strings.HasSuffix(s, u) {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(s, u), 64)
			return v * units[u]
		}
	}
	return 0
}

func imageSize() (float64, error) {
	ref := *nodeImage
	if ref == "" {
		ref = versions.Default().NodeImage()
	}
	out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Size}}", ref).Output()
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

func since(t time.Time) float64 { return time.Since(t).Seconds() }

func median(v []float64) float64 { return proccpu.Median(v) }

func join(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, ", ")
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}

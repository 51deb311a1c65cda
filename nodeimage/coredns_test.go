package nodeimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corednsFixture writes a module laid out as CoreDNS's is, with every
// left-out plugin and two kept ones in its generated files.
func corednsFixture(t *testing.T, plugins []string) string {
	t.Helper()
	src := t.TempDir()
	write := func(rel, text string) {
		path := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	var imports, directives strings.Builder
	for _, p := range plugins {
		imports.WriteString("\t_ \"github.com/coredns/coredns/plugin/" + p + "\"\n")
		directives.WriteString("\t\"" + p + "\",\n")
	}
	write("go.mod", "module github.com/coredns/coredns\n\ngo 1.26.0\n\ntoolchain go1.26.1\n")
	write("go.sum", "")
	write("coredns.go", "package main\n")
	write("coredns_test.go", "package main\n")
	write(corednsPluginImports, "package plugin\n\nimport (\n"+imports.String()+")\n")
	write(corednsDirectives, "package dnsserver\n\nvar Directives = []string{\n"+directives.String()+"}\n")
	return src
}

func TestPrepareCoreDNSSource(t *testing.T) {
	plugins := append([]string{"kubernetes", "forward"}, corednsLeftOut...)
	plugins = append(plugins, "template")
	src := corednsFixture(t, plugins)
	work := t.TempDir()
	if err := prepareCoreDNSSource(src, work); err != nil {
		t.Fatal(err)
	}
	imports, _ := os.ReadFile(filepath.Join(work, corednsPluginImports))
	directives, _ := os.ReadFile(filepath.Join(work, corednsDirectives))
	for _, p := range []string{"kubernetes", "forward", "template"} {
		if !strings.Contains(string(imports), "/plugin/"+p+"\"") || !strings.Contains(string(directives), "\""+p+"\",") {
			t.Errorf("kept plugin %s missing:\n%s\n%s", p, imports, directives)
		}
	}
	for _, p := range corednsLeftOut {
		if strings.Contains(string(imports), "/plugin/"+p+"\"") || strings.Contains(string(directives), "\""+p+"\",") {
			t.Errorf("left-out plugin %s still there:\n%s\n%s", p, imports, directives)
		}
	}
	if mod, _ := os.ReadFile(filepath.Join(work, "go.mod")); strings.Contains(string(mod), "toolchain") {
		t.Errorf("toolchain line kept:\n%s", mod)
	}
	if _, err := os.Stat(filepath.Join(work, "coredns_test.go")); !os.IsNotExist(err) {
		t.Errorf("tests copied: %v", err)
	}

	// A plugin list berth does not know is an error, not a silent mis-build.
	missing := corednsFixture(t, []string{"kubernetes", "azure"})
	if err := prepareCoreDNSSource(missing, t.TempDir()); err == nil || !strings.Contains(err.Error(), "appears 0 times") {
		t.Errorf("missing plugin: err = %v", err)
	}
}

// The cluster's own Corefile must only use plugins the build keeps.
func TestCorefileUsesKeptPlugins(t *testing.T) {
	manifest, err := os.ReadFile("../control/addons/manifests/coredns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, corefile, ok := strings.Cut(string(manifest), "Corefile: |\n")
	if !ok {
		t.Fatal("coredns.yaml has no Corefile")
	}
	corefile, _, _ = strings.Cut(corefile, "\n---")
	used := 0
	for _, line := range strings.Split(corefile, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] == "}" || strings.HasSuffix(fields[0], ":53") {
			continue
		}
		used++
		for _, p := range corednsLeftOut {
			if fields[0] == p {
				t.Errorf("the Corefile uses %s, which the CoreDNS build leaves out", p)
			}
		}
	}
	if used < 5 {
		t.Fatalf("read %d directives from the Corefile:\n%s", used, corefile)
	}
}

// hack/test.sh and hack/conformance.sh compile the control module with
// the node image's flags, or the Kubernetes build cache is not shared.
func TestScriptsShareGoFlags(t *testing.T) {
	for _, script := range []string{"../hack/test.sh", "../hack/conformance.sh"} {
		data, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), `"`+goFlags) {
			t.Errorf("%s does not compile the control module with %q", script, goFlags)
		}
	}
}

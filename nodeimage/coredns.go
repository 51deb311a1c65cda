package nodeimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// CoreDNS is compiled from its module at the release's version with every
// plugin upstream's own build has, except the few below: each brings a
// cloud SDK or a client library of its own, none is used by the
// cluster's Corefile, and together they are a quarter of CoreDNS's
// compile (cold, 2 cores: 164 → 121 CPU-seconds) and 21 MB of its binary
// (79 → 58 MB). CoreDNS documents this way of building it (its plugin
// list is plugin.cfg, compiled into core/plugin/zplugin.go and
// core/dnsserver/zdirectives.go); berth takes those two generated files
// from the module and drops the lines of the plugins left out, so every
// other plugin a user may add to the Corefile (hosts, rewrite, template,
// log, file, ...) stays, in upstream's order. A Corefile that names a
// left-out plugin fails to load with CoreDNS's own "unknown directive"
// error.
var corednsLeftOut = []string{
	"azure",    // Azure DNS zones: the Azure SDK
	"clouddns", // Google Cloud DNS: the Google API client
	"route53",  // AWS Route 53: the AWS SDK
	"dnssec",   // on-line signing; loads keys from AWS Secrets Manager (the AWS SDK)
	"etcd",     // SkyDNS-style records in etcd: the etcd client
	"nomad",    // Nomad services: Nomad's API client
	"geoip",    // MaxMind databases
	"tls",      // DNS over TLS with ACME certificates: certmagic
	"trace",    // OpenTracing to Zipkin or Datadog: both tracers
}

const (
	corednsModule = "github.com/coredns/coredns"
	// The two files CoreDNS's go generate writes from plugin.cfg.
	corednsPluginImports = "core/plugin/zplugin.go"
	corednsDirectives    = "core/dnsserver/zdirectives.go"
)

// corednsRecipe identifies the CoreDNS binary of release r.
func corednsRecipe(r versions.Release) string {
	h := sha256.New()
	fmt.Fprintf(h, "coredns %s left out %s flags %s\n", r.CoreDNS, strings.Join(corednsLeftOut, ","), goFlags)
	return r.CoreDNS + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// prepareCoreDNSSource copies CoreDNS's module at src (the read-only
// module cache) into work, without its tests, and leaves the left-out
// plugins out of the two generated files.
func prepareCoreDNSSource(src, work string) error {
	if err := copyTree(src, work); err != nil {
		return err
	}
	modPath := filepath.Join(work, "go.mod")
	data, err := os.ReadFile(modPath)
	if err != nil {
		return err
	}
	f, err := modfile.Parse(modPath, data, nil)
	if err != nil {
		return err
	}
	if f.Module == nil || f.Module.Mod.Path != corednsModule {
		return fmt.Errorf("%s is not %s's go.mod", modPath, corednsModule)
	}
	// A toolchain line would make a newer go download another toolchain.
	f.DropToolchainStmt()
	if data, err = f.Format(); err != nil {
		return err
	}
	if err := os.WriteFile(modPath, data, 0o644); err != nil {
		return err
	}
	for _, e := range []struct {
		file string
		line func(plugin string) *regexp.Regexp
	}{
		{corednsPluginImports, func(p string) *regexp.Regexp {
			return regexp.MustCompile(`(?m)^\s*_ "` + regexp.QuoteMeta(corednsModule+"/plugin/"+p) + `"\n`)
		}},
		{corednsDirectives, func(p string) *regexp.Regexp {
			return regexp.MustCompile(`(?m)^\s*"` + regexp.QuoteMeta(p) + `",\n`)
		}},
	} {
		path := filepath.Join(work, filepath.FromSlash(e.file))
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("CoreDNS's plugin list is no longer in %s: %w", e.file, err)
		}
		if data, err = leaveOut(data, e.line); err != nil {
			return fmt.Errorf("%s: %w", e.file, err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// leaveOut deletes the one line line(p) matches for each left-out plugin
// p, failing when a plugin has no such line (CoreDNS renamed or dropped
// it: the list above needs a look).
func leaveOut(data []byte, line func(plugin string) *regexp.Regexp) ([]byte, error) {
	for _, p := range corednsLeftOut {
		re := line(p)
		if n := len(re.FindAllIndex(data, -1)); n != 1 {
			return nil, fmt.Errorf("plugin %q appears %d times, expected once", p, n)
		}
		data = re.ReplaceAll(data, nil)
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		return nil, fmt.Errorf("unexpected end of file")
	}
	return data, nil
}

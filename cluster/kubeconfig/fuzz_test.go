package kubeconfig

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/berth-dev/berth/cluster/config"
)

// FuzzMergeRemove merges a berth context into an arbitrary kubeconfig
// file and removes it again. "Existing contexts preserved byte-for-byte"
// means here, precisely:
//
//   - a file clientcmd cannot load is refused and left byte-for-byte as
//     it was;
//   - otherwise every cluster, user and context entry not named after the
//     berth context, alone in a config, encodes (clientcmd.Write) to the
//     same bytes before and after Merge, and after Remove; so do the
//     preferences and extensions (the config stripped of its entries and
//     current context);
//   - Merge makes the berth context current; Remove clears the current
//     context only when it was the berth one.
//
// (The file as a whole is re-encoded by clientcmd, as kubectl does:
// comments and key order are not kept, the entries' content is.)
func FuzzMergeRemove(f *testing.F) {
	f.Add([]byte(""), "dev")
	f.Add([]byte("apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://prod:6443\n    certificate-authority-data: Y2E=\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: prod\n    namespace: x\nusers:\n- name: prod\n  user:\n    token: t\ncurrent-context: prod\npreferences:\n  colors: true\n"), "dev")
	f.Add([]byte("apiVersion: v1\nkind: Config\ncontexts:\n- name: berth-dev\n  context:\n    cluster: berth-dev\ncurrent-context: berth-dev\n"), "dev")
	f.Add([]byte("{"), "x")
	f.Fuzz(func(t *testing.T, data []byte, cluster string) {
		path := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Only names berth accepts reach Merge (a name that is not valid
		// UTF-8, the first thing this fuzzer found, cannot round-trip
		// through YAML at all).
		if config.ValidateName(cluster) != nil {
			t.Skip()
		}
		name := ContextName(cluster)
		ctx := context.Background()
		before, loadErr := clientcmd.LoadFromFile(path)
		err := Merge(ctx, path, Build(name, "https://127.0.0.1:6443", []byte("ca"), []byte("cert"), []byte("key")))
		if loadErr != nil {
			if err == nil {
				t.Fatalf("merged into a file clientcmd cannot load (%v)", loadErr)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, data) {
				t.Fatalf("a refused merge changed the file")
			}
			return
		}
		if err != nil {
			// An entry clientcmd read but cannot write back: nothing
			// may have been written.
			if now, _ := os.ReadFile(path); !bytes.Equal(now, data) {
				t.Fatalf("a failed merge (%v) changed the file", err)
			}
			return
		}
		merged, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatalf("merged file does not load: %v", err)
		}
		if merged.CurrentContext != name || merged.Contexts[name] == nil {
			t.Fatalf("merge did not add %s as current context", name)
		}
		samePreserved(t, "merge", before, merged, name)

		if err := Remove(ctx, path, name); err != nil {
			t.Fatalf("remove: %v", err)
		}
		removed, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatalf("file after remove does not load: %v", err)
		}
		if removed.Contexts[name] != nil || removed.Clusters[name] != nil || removed.AuthInfos[name] != nil {
			t.Fatalf("remove left an entry named %s", name)
		}
		if removed.CurrentContext != "" {
			t.Fatalf("current context %q after removing the current %s", removed.CurrentContext, name)
		}
		samePreserved(t, "remove", before, removed, name)
	})
}

// samePreserved compares every entry of before not named skip with after.
func samePreserved(t *testing.T, op string, before, after *clientcmdapi.Config, skip string) {
	t.Helper()
	for n, c := range before.Clusters {
		if n != skip && !bytes.Equal(encodeEntry(t, n, c, nil, nil), encodeEntry(t, n, after.Clusters[n], nil, nil)) {
			t.Fatalf("%s changed cluster %q", op, n)
		}
	}
	for n, u := range before.AuthInfos {
		if n != skip && !bytes.Equal(encodeEntry(t, n, nil, u, nil), encodeEntry(t, n, nil, after.AuthInfos[n], nil)) {
			t.Fatalf("%s changed user %q", op, n)
		}
	}
	for n, c := range before.Contexts {
		if n != skip && !bytes.Equal(encodeEntry(t, n, nil, nil, c), encodeEntry(t, n, nil, nil, after.Contexts[n])) {
			t.Fatalf("%s changed context %q", op, n)
		}
	}
	for n := range after.Contexts {
		if n != skip && before.Contexts[n] == nil {
			t.Fatalf("%s added context %q", op, n)
		}
	}
	strip := func(c *clientcmdapi.Config) []byte {
		s := clientcmdapi.NewConfig()
		s.Preferences = c.Preferences
		s.Extensions = c.Extensions
		out, err := clientcmd.Write(*s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if !bytes.Equal(strip(before), strip(after)) {
		t.Fatalf("%s changed the preferences or extensions", op)
	}
}

// encodeEntry is the clientcmd encoding of a config holding one entry
// (a missing entry encodes as an empty config, which differs).
func encodeEntry(t *testing.T, name string, cl *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo, c *clientcmdapi.Context) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	switch {
	case cl != nil:
		cl.LocationOfOrigin = ""
		cfg.Clusters[name] = cl
	case u != nil:
		u.LocationOfOrigin = ""
		cfg.AuthInfos[name] = u
	case c != nil:
		c.LocationOfOrigin = ""
		cfg.Contexts[name] = c
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

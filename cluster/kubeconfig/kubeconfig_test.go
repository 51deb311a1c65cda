package kubeconfig

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestMergeKeepsOtherEntriesAndRemoveRestores(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	existing := clientcmdapi.NewConfig()
	existing.Clusters["prod"] = &clientcmdapi.Cluster{Server: "https://prod.example:6443"}
	existing.AuthInfos["prod"] = &clientcmdapi.AuthInfo{Token: "t"}
	existing.Contexts["prod"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "prod"}
	existing.CurrentContext = "prod"
	if err := clientcmd.WriteToFile(*existing, path); err != nil {
		t.Fatal(err)
	}

	name := ContextName("dev")
	if err := Merge(context.Background(), path, Build(name, "https://127.0.0.1:40000", []byte("ca"), []byte("cert"), []byte("key"))); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode = %v, want 0600", st.Mode().Perm())
	}
	got, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.CurrentContext != "berth-dev" {
		t.Errorf("current context = %q, want berth-dev", got.CurrentContext)
	}
	if got.Clusters["prod"] == nil || got.Clusters["prod"].Server != "https://prod.example:6443" {
		t.Error("merge lost the existing prod cluster")
	}
	if c := got.Clusters["berth-dev"]; c == nil || c.Server != "https://127.0.0.1:40000" || string(c.CertificateAuthorityData) != "ca" {
		t.Errorf("merged cluster = %+v", c)
	}

	if err := Remove(context.Background(), path, name); err != nil {
		t.Fatal(err)
	}
	got, err = clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Contexts["berth-dev"] != nil || got.Clusters["berth-dev"] != nil || got.AuthInfos["berth-dev"] != nil {
		t.Error("remove left berth-dev entries behind")
	}
	if got.CurrentContext != "" {
		t.Errorf("current context after removing it = %q, want none", got.CurrentContext)
	}
	if got.Contexts["prod"] == nil {
		t.Error("remove deleted the prod context")
	}
}

func TestMergeCreatesMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "config")
	if err := Merge(context.Background(), path, Build("berth-x", "https://127.0.0.1:1", nil, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if err := Remove(context.Background(), filepath.Join(t.TempDir(), "absent"), "berth-x"); err != nil {
		t.Errorf("removing from a missing file: %v", err)
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("KUBECONFIG", "/a/first"+string(os.PathListSeparator)+"/b/second")
	if p, _ := DefaultPath(); p != "/a/first" {
		t.Errorf("DefaultPath = %q, want the first KUBECONFIG entry", p)
	}
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", "/home/u")
	if p, _ := DefaultPath(); p != "/home/u/.kube/config" {
		t.Errorf("DefaultPath = %q", p)
	}
}

// Package kubeconfig builds a cluster's kubeconfig files and merges the
// admin one into the user's kubeconfig (as context berth-<cluster>), and
// removes it again when the cluster is deleted.
package kubeconfig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ContextName is the kubeconfig context (and cluster and user entry) of a
// berth cluster.
func ContextName(cluster string) string { return "berth-" + cluster }

// Build returns a kubeconfig with one cluster, user and context, named
// name, authenticating with a client certificate.
func Build(name, server string, caPEM, certPEM, keyPEM []byte) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	return cfg
}

// Encode serializes cfg as YAML.
func Encode(cfg *clientcmdapi.Config) ([]byte, error) {
	return clientcmd.Write(*cfg)
}

// DefaultPath is the file berth merges into: the first entry of
// $KUBECONFIG, or ~/.kube/config.
func DefaultPath() (string, error) {
	if env := os.Getenv("KUBECONFIG"); env != "" {
		for _, p := range filepath.SplitList(env) {
			if p != "" {
				return p, nil
			}
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding home directory for the kubeconfig: %w", err)
	}
	return filepath.Join(home, ".kube", "config"), nil
}

func load(path string) (*clientcmdapi.Config, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

func save(path string, cfg *clientcmdapi.Config) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encoding kubeconfig: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".berth-kubeconfig-")
	if err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing kubeconfig %s: %w", path, err)
	}
	return nil
}

// Merge adds (or replaces) the single context in add into the kubeconfig
// at path and makes it current. The file is written with mode 0600. The
// read, change and write happen under the file's lock (see lock), so
// concurrent Merges and Removes of different contexts lose nothing.
//
// Every other entry (cluster, user, context), the preferences and the
// extensions are kept as they were: each encodes (clientcmd.Write) to the
// same bytes before and after; FuzzMergeRemove checks it.
func Merge(ctx context.Context, path string, add *clientcmdapi.Config) error {
	unlock, err := lock(ctx, path)
	if err != nil {
		return err
	}
	defer unlock()
	cfg, err := load(path)
	if err != nil {
		return err
	}
	for k, v := range add.Clusters {
		cfg.Clusters[k] = v
	}
	for k, v := range add.AuthInfos {
		cfg.AuthInfos[k] = v
	}
	for k, v := range add.Contexts {
		cfg.Contexts[k] = v
	}
	if add.CurrentContext != "" {
		cfg.CurrentContext = add.CurrentContext
	}
	return save(path, cfg)
}

// Remove deletes the context, cluster and user named name from the
// kubeconfig at path. If it was the current context, none is current
// afterwards. A missing file or entry is not an error. Like Merge, it
// holds the file's lock and keeps every other entry as it was.
func Remove(ctx context.Context, path, name string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lock(ctx, path)
	if err != nil {
		return err
	}
	defer unlock()
	cfg, err := load(path)
	if err != nil {
		return err
	}
	_, hadCtx := cfg.Contexts[name]
	_, hadCluster := cfg.Clusters[name]
	_, hadUser := cfg.AuthInfos[name]
	if !hadCtx && !hadCluster && !hadUser {
		return nil
	}
	delete(cfg.Contexts, name)
	delete(cfg.Clusters, name)
	delete(cfg.AuthInfos, name)
	if cfg.CurrentContext == name {
		cfg.CurrentContext = ""
	}
	return save(path, cfg)
}

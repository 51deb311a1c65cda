package create

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/cluster/internal/pki"
	"github.com/berth-dev/berth/cluster/kubeconfig"
	"github.com/berth-dev/berth/cluster/provider"
	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// fileSet collects the files one node receives.
type fileSet struct {
	files []provider.File
	err   error
}

func (f *fileSet) add(path string, mode uint32, data []byte) {
	f.files = append(f.files, provider.File{Path: path, Mode: os.FileMode(mode), Data: data})
}

// dir adds a directory with its mode; it must come before the files in it
// (the provider makes missing parent directories 0755).
func (f *fileSet) dir(path string, mode uint32) {
	f.files = append(f.files, provider.File{Path: path, Mode: os.ModeDir | os.FileMode(mode)})
}

// keyPair adds name.crt (0644) and name.key (0600) under the PKI
// directory; name may have a subdirectory ("etcd/server").
func (f *fileSet) keyPair(name string, kp *pki.KeyPair, err error) {
	if f.err != nil {
		return
	}
	if err != nil {
		f.err = err
		return
	}
	key, err := kp.KeyPEM()
	if err != nil {
		f.err = err
		return
	}
	f.add(nodeconfig.PKIDir+"/"+name+".crt", 0o644, kp.CertPEM())
	f.add(nodeconfig.PKIDir+"/"+name+".key", 0o600, key)
}

func (f *fileSet) kubeconfig(path, server string, ca *pki.KeyPair, kp *pki.KeyPair, err error) {
	if f.err != nil {
		return
	}
	if err != nil {
		f.err = err
		return
	}
	key, err := kp.KeyPEM()
	if err != nil {
		f.err = err
		return
	}
	data, err := kubeconfig.Encode(kubeconfig.Build("default", server, ca.CertPEM(), kp.CertPEM(), key))
	if err != nil {
		f.err = err
		return
	}
	f.add(path, 0o600, data)
}

// nodeFiles issues the certificates and kubeconfigs of one node. A
// worker gets only its kubelet and kube-proxy identities and the CA
// certificate; the CA key and service-account keys stay on control-plane
// nodes.
func nodeFiles(c *pki.Cluster, admin *pki.KeyPair, n *nodeconfig.Node, apiSANs []string, apiIPs []net.IP) ([]provider.File, error) {
	var f fileSet
	ip := net.ParseIP(n.IP)
	cfg, err := n.Marshal()
	if err != nil {
		return nil, err
	}
	f.add(nodeconfig.Path, 0o644, cfg)
	// Kubeconfigs and keys: only root (every component runs as root)
	// may list or read them. Files are 0600 (keys, kubeconfigs) or 0644
	// (certificates), the directories 0700.
	f.dir(filepath.Dir(nodeconfig.PKIDir), 0o700)
	f.dir(nodeconfig.PKIDir, 0o700)
	f.add(nodeconfig.PKIDir+"/ca.crt", 0o644, c.CA.CertPEM())
	kubeletClient, err := c.Client("system:node:"+n.Name, "system:nodes")
	f.kubeconfig(nodeconfig.KubeletKubeconfig, n.APIServerEndpoint, c.CA, kubeletClient, err)
	proxyClient, err := c.Client("system:kube-proxy")
	f.kubeconfig(nodeconfig.KubeProxyKubeconfig, n.APIServerEndpoint, c.CA, proxyClient, err)
	serving, err := c.KubeletServing(n.Name, ip)
	f.keyPair("kubelet", serving, err)

	if n.IsControlPlane() {
		caKey, err := c.CA.KeyPEM()
		if err != nil {
			return nil, err
		}
		f.add(nodeconfig.PKIDir+"/ca.key", 0o600, caKey)
		saKey, err := pki.EncodeKey(c.ServiceAccount)
		if err != nil {
			return nil, err
		}
		saPub, err := pki.EncodePublicKey(c.ServiceAccount)
		if err != nil {
			return nil, err
		}
		f.add(nodeconfig.PKIDir+"/sa.key", 0o600, saKey)
		f.add(nodeconfig.PKIDir+"/sa.pub", 0o644, saPub)
		f.add(nodeconfig.PKIDir+"/front-proxy-ca.crt", 0o644, c.FrontProxyCA.CertPEM())
		srv, err := c.APIServer(apiSANs, apiIPs)
		f.keyPair("apiserver", srv, err)
		kc, err := c.Client("kube-apiserver-kubelet-client", "system:masters")
		f.keyPair("apiserver-kubelet-client", kc, err)
		fp, err := c.FrontProxyClient()
		f.keyPair("front-proxy-client", fp, err)
		f.etcd(c, n, ip)
		local := fmt.Sprintf("https://127.0.0.1:%d", nodeconfig.APIServerPort)
		f.kubeconfig(nodeconfig.AdminKubeconfig, local, c.CA, admin, nil)
		// In system:masters: see --use-service-account-credentials in
		// control/componentconfig.
		cm, err := c.Client("system:kube-controller-manager", "system:masters")
		f.kubeconfig(nodeconfig.ControllerManagerKubeconfig, local, c.CA, cm, err)
		// The scheduler too: as system:kube-scheduler its first lists come
		// before the API server has bootstrapped RBAC, are Forbidden, and
		// its informers back off — the create trace showed its caches
		// synced 3 s and its lease taken 8 s after the API server served,
		// with every pod (CoreDNS first) waiting for it. It runs in the
		// same node container as the CA key, so masters crosses no
		// boundary that exists.
		sched, err := c.Client("system:kube-scheduler", "system:masters")
		f.kubeconfig(nodeconfig.SchedulerKubeconfig, local, c.CA, sched, err)
		cmServing, err := c.LocalServing("kube-controller-manager")
		f.keyPair("kube-controller-manager", cmServing, err)
		schedServing, err := c.LocalServing("kube-scheduler")
		f.keyPair("kube-scheduler", schedServing, err)
	}
	if f.err != nil {
		return nil, fmt.Errorf("issuing certificates for node %s: %w", n.Name, f.err)
	}
	return f.files, nil
}

// etcd adds a control-plane node's etcd identities, all from the etcd CA
// (kubeadm's layout under pki/etcd): the member's serving and peer
// certificates, the API server's client certificate, and the client
// certificate berth-node itself uses (componentconfig.EtcdClientConfig).
// The etcd CA key goes along as the cluster CA's does, so a control plane
// holds everything needed to issue for a new member.
func (f *fileSet) etcd(c *pki.Cluster, n *nodeconfig.Node, ip net.IP) {
	if f.err != nil {
		return
	}
	f.dir(nodeconfig.PKIDir+"/etcd", 0o700)
	key, err := c.EtcdCA.KeyPEM()
	if err != nil {
		f.err = err
		return
	}
	f.add(nodeconfig.PKIDir+"/etcd/ca.crt", 0o644, c.EtcdCA.CertPEM())
	f.add(nodeconfig.PKIDir+"/etcd/ca.key", 0o600, key)
	srv, err := c.EtcdServer(n.Name, ip)
	f.keyPair("etcd/server", srv, err)
	peer, err := c.EtcdPeer(n.Name, ip)
	f.keyPair("etcd/peer", peer, err)
	api, err := c.EtcdClient("kube-apiserver-etcd-client")
	f.keyPair("apiserver-etcd-client", api, err)
	hc, err := c.EtcdClient("berth-node-etcd-client")
	f.keyPair("etcd/healthcheck-client", hc, err)
}

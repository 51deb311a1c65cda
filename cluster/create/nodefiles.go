package create

import (
	"fmt"
	"net"
	"os"

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
	}
	if f.err != nil {
		return nil, fmt.Errorf("issuing certificates for node %s: %w", n.Name, f.err)
	}
	return f.files, nil
}

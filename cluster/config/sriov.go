package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/berth-dev/berth/nodeimage/nodeconfig"
)

// SRIOV gives a node virtual functions (VFs) of one SR-IOV physical
// function (PF) of the host:
//
//	nodes:
//	- role: worker
//	  sriov:
//	  - pf: ens1f0          # the PF's interface on the host
//	    vfs: 2              # how many free VFs (or vfIndexes: [0, 3])
//	    mode: netdevice     # or vfio (VFs bound to vfio-pci, for DPDK)
//	    createVFs: 4        # write sriov_numvfs first when it is 0
//
// This file holds the defaults and the checks that need no host; which
// VFs are free, and whether the PF exists at all, is decided by package
// cluster/sriov when the cluster is planned. kind's v1alpha4 format has
// no such field.
type SRIOV struct {
	// PF is the physical function's network interface on the host.
	PF string `json:"pf" yaml:"pf"`
	// VFs is how many free VFs of the PF the node gets.
	VFs int `json:"vfs,omitempty" yaml:"vfs,omitempty"`
	// VFIndexes asks for these VFs of the PF (virtfnN) instead of a count.
	VFIndexes []int `json:"vfIndexes,omitempty" yaml:"vfIndexes,omitempty"`
	// ResourceName is the extended resource pods request
	// (default berth.dev/<pf>).
	ResourceName string `json:"resourceName,omitempty" yaml:"resourceName,omitempty"`
	// Mode is netdevice (default: the VF's netdev moves into the node,
	// and from there into pods) or vfio (the VF is bound to vfio-pci and
	// its /dev/vfio group is passed into the node).
	Mode string `json:"mode,omitempty" yaml:"mode,omitempty"`
	// CreateVFs, when the PF has no VFs yet (sriov_numvfs is 0), makes
	// this many first. A PF that already has VFs is never changed.
	CreateVFs int `json:"createVFs,omitempty" yaml:"createVFs,omitempty"`
	// IPAM is an optional CNI IPAM block (host-local) for the pod
	// interfaces of this resource, passed on as JSON.
	IPAM map[string]any `json:"ipam,omitempty" yaml:"ipam,omitempty"`
}

// DefaultSRIOVResourcePrefix is the domain of the default resource name
// of a PF: berth.dev/<pf>.
const DefaultSRIOVResourcePrefix = "berth.dev/"

func setSRIOVDefaults(entries []SRIOV) {
	for i := range entries {
		s := &entries[i]
		if s.ResourceName == "" && s.PF != "" {
			s.ResourceName = DefaultSRIOVResourcePrefix + s.PF
		}
		if s.Mode == "" {
			s.Mode = nodeconfig.SRIOVModeNetdevice
		}
	}
}

// An extended resource name: a DNS subdomain, '/', and a name of at
// most 63 characters (Kubernetes' qualified-name rules, checked here so
// the mistake is named before a node is made rather than by the kubelet).
var (
	resourceDomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	resourceNameRE   = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

func validResourceName(s string) bool {
	domain, name, ok := strings.Cut(s, "/")
	return ok && len(domain) <= 253 && resourceDomainRE.MatchString(domain) &&
		len(name) <= 63 && resourceNameRE.MatchString(name) &&
		domain != "kubernetes.io" && !strings.HasSuffix(domain, ".kubernetes.io")
}

// validInterfaceName follows the kernel's dev_valid_name: at most 15
// bytes, not "." or "..", no '/', ':' or white space.
func validInterfaceName(s string) bool {
	return s != "" && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n")
}

// validateSRIOV checks the sriov entries of every node, as far as that
// is possible without the host: the fields, and that no VF index is
// asked for twice.
func (c *Cluster) validateSRIOV() FieldErrors {
	var errs FieldErrors
	add := func(field, format string, a ...any) {
		errs = append(errs, FieldError{Field: field, Detail: fmt.Sprintf(format, a...)})
	}
	indexOwner := map[string]string{}   // "pf/index" -> entry field
	createVFs := map[string]string{}    // pf -> entry field that set createVFs
	resourceMode := map[string]string{} // resource name -> "mode (field)"
	for i, n := range c.Nodes {
		for j, s := range n.SRIOV {
			field := fmt.Sprintf("nodes[%d].sriov[%d]", i, j)
			if !validInterfaceName(s.PF) {
				if s.PF == "" {
					add(field+".pf", "empty: name the physical function's network interface on the host (see `ip link`)")
				} else {
					add(field+".pf", "%q is not a network interface name", s.PF)
				}
			}
			switch {
			case s.VFs < 0:
				add(field+".vfs", "%d is negative", s.VFs)
			case s.VFs > 0 && len(s.VFIndexes) > 0:
				add(field+".vfs", "%d and vfIndexes are both set: ask for a number of VFs or for VFs by index, not both", s.VFs)
			case s.VFs == 0 && len(s.VFIndexes) == 0:
				add(field+".vfs", "no VFs asked for: set vfs (how many) or vfIndexes (which)")
			}
			seen := map[int]bool{}
			for k, idx := range s.VFIndexes {
				f := fmt.Sprintf("%s.vfIndexes[%d]", field, k)
				if idx < 0 {
					add(f, "%d is negative", idx)
					continue
				}
				if seen[idx] {
					add(f, "VF %d is listed twice", idx)
					continue
				}
				seen[idx] = true
				key := fmt.Sprintf("%s/%d", s.PF, idx)
				if prev, dup := indexOwner[key]; dup {
					add(f, "VF %d of %s is also asked for by %s: a VF can go to one node only", idx, s.PF, prev)
					continue
				}
				indexOwner[key] = field
			}
			if !validResourceName(s.ResourceName) {
				add(field+".resourceName", "%q is not an extended resource name (domain/name, e.g. %s%s)", s.ResourceName, DefaultSRIOVResourcePrefix, s.PF)
			}
			switch s.Mode {
			case nodeconfig.SRIOVModeNetdevice, nodeconfig.SRIOVModeVFIO:
				if prev, ok := resourceMode[s.ResourceName]; ok && !strings.HasPrefix(prev, s.Mode+" ") {
					add(field+".mode", "%s, but resource %s is %s: use another resourceName for the other mode", s.Mode, s.ResourceName, prev)
				} else if !ok {
					resourceMode[s.ResourceName] = fmt.Sprintf("%s (%s)", s.Mode, field)
				}
			default:
				add(field+".mode", "%q is neither %s nor %s", s.Mode, nodeconfig.SRIOVModeNetdevice, nodeconfig.SRIOVModeVFIO)
			}
			if s.CreateVFs < 0 {
				add(field+".createVFs", "%d is negative", s.CreateVFs)
			} else if s.CreateVFs > 0 {
				if prev, ok := createVFs[s.PF]; ok {
					prevN := c.sriovAt(prev).CreateVFs
					if prevN != s.CreateVFs {
						add(field+".createVFs", "%d, but %s.createVFs is %d for the same PF %s: set it once", s.CreateVFs, prev, prevN, s.PF)
					}
				} else {
					createVFs[s.PF] = field
				}
				if s.VFs > s.CreateVFs {
					add(field+".createVFs", "%d makes fewer VFs than vfs asks for (%d)", s.CreateVFs, s.VFs)
				} else if len(s.VFIndexes) > 0 && slices.Max(s.VFIndexes) >= s.CreateVFs {
					add(field+".createVFs", "%d makes VFs 0 to %d, not VF %d of vfIndexes", s.CreateVFs, s.CreateVFs-1, slices.Max(s.VFIndexes))
				}
			}
			if s.IPAM != nil {
				if t, _ := s.IPAM["type"].(string); t == "" {
					add(field+".ipam", "has no type: give a CNI IPAM block such as {type: host-local, subnet: 192.168.100.0/24}")
				}
			}
		}
	}
	return errs
}

// sriovAt returns the entry a field "nodes[i].sriov[j]" names.
func (c *Cluster) sriovAt(field string) SRIOV {
	var i, j int
	if _, err := fmt.Sscanf(field, "nodes[%d].sriov[%d]", &i, &j); err != nil {
		return SRIOV{}
	}
	return c.Nodes[i].SRIOV[j]
}

// HasSRIOV reports whether any node asks for SR-IOV VFs.
func (c *Cluster) HasSRIOV() bool {
	for _, n := range c.Nodes {
		if len(n.SRIOV) > 0 {
			return true
		}
	}
	return false
}

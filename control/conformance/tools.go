//go:build tools

// Package conformance pins the upstream Kubernetes end-to-end suite and
// the test images built from Go (agnhost, nonewprivs, etcd,
// sample-apiserver) so that the control module's go.mod and go.sum
// carry their dependencies: hack/conformance.sh compiles e2e.test and
// agnhost from this module at exactly the Kubernetes version berth runs.
// The build tag keeps them out of every normal build, vet and test.
package conformance

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/kubernetes/test/images/nonewprivs"
	_ "k8s.io/sample-apiserver"
)

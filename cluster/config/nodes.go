package config

import "fmt"

// NodeNames returns the container and Kubernetes node name of each node,
// as kind names them: <cluster>-control-plane, <cluster>-control-plane2,
// <cluster>-worker, <cluster>-worker2, ...
func (c *Cluster) NodeNames() []string {
	counts := map[string]int{}
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		counts[n.Role]++
		suffix := ""
		if counts[n.Role] > 1 {
			suffix = fmt.Sprint(counts[n.Role])
		}
		names[i] = c.Name + "-" + n.Role + suffix
	}
	return names
}

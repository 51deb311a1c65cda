package config

import (
	"strings"
	"testing"
)

func TestRegistryFromFile(t *testing.T) {
	for _, tc := range []struct {
		file string
		port int
	}{
		{"", 0},
		{"registry: {}\n", DefaultRegistryPort},
		{"registry:\n  port: 5002\n", 5002},
	} {
		c, _, err := Load(strings.NewReader("apiVersion: berth.dev/v1alpha1\nkind: Cluster\n"+tc.file), "test.yaml")
		if err != nil {
			t.Errorf("%q: %v", tc.file, err)
			continue
		}
		if got := c.RegistryPort(); got != tc.port {
			t.Errorf("%q: registry port %d, want %d", tc.file, got, tc.port)
		}
		if tc.port == 0 && c.Registry != nil {
			t.Errorf("%q: a registry was set up without asking", tc.file)
		}
	}
}

func TestRegistryErrorsNameTheFieldAndLine(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"registry:\n  port: 70000\n", "line 4: registry.port: 70000 is not a port number"},
		{"registry:\n  port: -1\n", "registry.port: -1 is not a port number"},
		{"registry:\n  prot: 5002\n", "field prot not found"},
		{"networking:\n  apiServerPort: 5001\nregistry: {}\n", "registry.port: 5001 is also networking.apiServerPort"},
		{"registry: {port: 8080}\nnodes:\n- role: control-plane\n  extraPortMappings:\n  - {containerPort: 80, hostPort: 8080}\n",
			"registry.port: 8080 is also nodes[0].extraPortMappings[0].hostPort"},
	} {
		_, _, err := Load(strings.NewReader("apiVersion: berth.dev/v1alpha1\nkind: Cluster\n"+tc.file), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.file, err, tc.want)
		}
	}
}

func TestRegistryPortsThatDoNotCollide(t *testing.T) {
	c := Default()
	c.Registry = &RegistryConfig{Port: 8080}
	// Published on another address than the registry's loopback one.
	c.Nodes[0].ExtraPortMappings = []PortMapping{{ContainerPort: 80, HostPort: 8080, ListenAddress: "127.0.0.2"}, {ContainerPort: 53, HostPort: 8080, Protocol: "UDP"}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

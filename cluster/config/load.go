package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// KindAPIVersion is kind's cluster configuration version, accepted and
// translated so kind users change nothing.
const KindAPIVersion = "kind.x-k8s.io/v1alpha4"

// Load reads a cluster configuration (berth's or kind's), strictly: an
// unknown field or a value of the wrong type is an error naming the
// field and its line. The result is defaulted and validated. Warnings
// list kind settings that have no meaning for berth.
func Load(r io.Reader, source string) (*Cluster, []string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", source, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(root.Content) == 0 {
		return nil, nil, fmt.Errorf("%s: the file is empty; see docs/config.md for the format", source)
	}
	var head struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
	}
	_ = root.Decode(&head)
	var cfg *Cluster
	var warnings []string
	switch head.APIVersion {
	case APIVersion:
		cfg = &Cluster{}
		if err := decodeStrict(data, cfg); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", source, err)
		}
	case KindAPIVersion:
		var kc kindCluster
		if err := decodeStrict(data, &kc); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", source, err)
		}
		cfg, warnings = kc.translate()
	case "":
		return nil, nil, fmt.Errorf("%s: apiVersion is missing: start the file with `apiVersion: %s` and `kind: %s`", source, APIVersion, Kind)
	default:
		return nil, nil, fmt.Errorf("%s: line %d: apiVersion: %q is not supported (use %s, or kind's %s)", source, lineOf(&root, "apiVersion"), head.APIVersion, APIVersion, KindAPIVersion)
	}
	if head.Kind != Kind {
		return nil, nil, fmt.Errorf("%s: line %d: kind: %q is not supported (use %s)", source, lineOf(&root, "kind"), head.Kind, Kind)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		var fe FieldErrors
		if errors.As(err, &fe) {
			for i := range fe {
				fe[i].Line = lineOf(&root, fe[i].Field)
			}
			return nil, warnings, fmt.Errorf("%s: %w", source, fe)
		}
		return nil, warnings, err
	}
	return cfg, warnings, nil
}

func decodeStrict(data []byte, into any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("%w (see docs/config.md for the fields)", err)
	}
	return nil
}

// lineOf finds the line of a field path such as nodes[1].extraPortMappings[0].hostPort
// in a YAML document (0 when it is not there, as for defaulted fields).
func lineOf(doc *yaml.Node, path string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if i := strings.Index(part, "["); i >= 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			idx, _ = strconv.Atoi(part[i+1 : len(part)-1])
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

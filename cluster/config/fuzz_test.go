package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoad feeds the config decoder (berth's and kind's formats) arbitrary
// input. It must never panic, and whatever it accepts must be a valid,
// fully defaulted cluster: validating it again passes and defaulting it
// again changes nothing.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "*.yaml"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("apiVersion: " + APIVersion + "\nkind: " + Kind + "\n"))
	f.Add([]byte("apiVersion: " + KindAPIVersion + "\nkind: Cluster\nnodes:\n- role: control-plane\n- role: worker\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := Load(bytes.NewReader(data), "fuzz.yaml")
		if err != nil {
			if cfg != nil {
				t.Fatalf("error %v with a config", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
		again := *cfg
		again.SetDefaults()
		if !reflect.DeepEqual(&again, cfg) {
			t.Fatalf("defaults not idempotent:\n%+v\n%+v", cfg, &again)
		}
	})
}

package components

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStartCPUProfile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(CPUProfileDirEnv, dir)
	t.Setenv(CPUProfileSecondsEnv, "1")
	StartCPUProfile("kube-test")
	deadline := time.Now().Add(1500 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	var data []byte
	for range 50 {
		matches, _ := filepath.Glob(filepath.Join(dir, "kube-test-*.pprof"))
		if len(matches) == 1 {
			data, _ = os.ReadFile(matches[0])
			if len(data) > 0 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A finished profile is gzip-compressed protobuf.
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Fatalf("no finished profile in %s (%d bytes)", dir, len(data))
	}
}

func TestStartCPUProfileOff(t *testing.T) {
	t.Setenv(CPUProfileDirEnv, "")
	StartCPUProfile("kube-test") // must not start a profile: a second start would fail
	dir := t.TempDir()
	t.Setenv(CPUProfileDirEnv, dir)
	t.Setenv(CPUProfileSecondsEnv, "1")
	StartCPUProfile("kube-test")
	time.Sleep(1200 * time.Millisecond)
	m, _ := filepath.Glob(filepath.Join(dir, "*.pprof"))
	if len(m) != 1 {
		t.Fatalf("profiles: %v", m)
	}
	if data, _ := os.ReadFile(m[0]); !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Fatalf("%s is not a finished profile (%d bytes)", m[0], len(data))
	}
}

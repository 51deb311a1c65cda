package docker

import (
	"strings"
	"testing"
)

func TestProgressError(t *testing.T) {
	ok := `{"stream":"Loaded image: berth/node:v1.37.2\n"}` + "\n"
	if err := progressError(strings.NewReader(ok)); err != nil {
		t.Errorf("a successful load failed: %v", err)
	}
	failed := ok + `{"errorDetail":{"message":"invalid diffID"},"error":"invalid diffID for layer 0"}` + "\n"
	if err := progressError(strings.NewReader(failed)); err == nil || err.Error() != "invalid diffID for layer 0" {
		t.Errorf("error = %v, want the engine's message", err)
	}
	if err := progressError(strings.NewReader(`{"stream":`)); err == nil {
		t.Error("a truncated stream was taken for success")
	}
}

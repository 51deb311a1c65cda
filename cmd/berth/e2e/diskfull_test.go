//go:build e2e

package e2e

import (
	"archive/tar"
	"context"
	"io"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-dev/berth/nodeimage/versions"
)

// TestLoadDiskFull gives a node a small /var (a 600 MB tmpfs volume of
// the node's name, which berth uses as it finds it) and loads an image
// that fits unpacked but not also as containerd's archive copy: the load
// fails saying the disk is full, the node is left as before (same free
// space, same images), a load that certainly cannot fit is refused before
// streaming, and a new pod still runs.
func TestLoadDiskFull(t *testing.T) {
	const name = "df-e2e"
	node := name + "-control-plane"
	ctx := context.Background()
	vol := node + "-var"
	if out, err := exec.Command("docker", "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=600m", vol).CombinedOutput(); err != nil {
		t.Fatalf("creating the tmpfs volume: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "volume", "rm", "-f", vol).CombinedOutput(); err != nil {
			t.Errorf("removing volume %s: %v: %s", vol, err, out)
		}
	})
	client := createCluster(t, name)

	free := nodeFree(t, node)
	images := nodeImages(t, node)
	// 0.7 of the free space: the layer fits unpacked (no refusal), but
	// not twice.
	const ref = "berth-e2e/diskfull:big"
	randomImage(t, ref, free*7/10)
	_, err := berth(t, "load", "image", ref, "--name", name)
	if err == nil {
		t.Fatalf("loading %d MB into a node with %d MB free succeeded", free*7/10>>20, free>>20)
	}
	for _, want := range []string{"node " + node + " ran out of space loading " + ref, "no space left on device", "the node is as before", "--nodes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
	if after := nodeFree(t, node); free-after > 16<<20 {
		t.Errorf("the failed load left %d MB on the node (%d MB free before, %d MB after)", (free-after)>>20, free>>20, after>>20)
	}
	if after := nodeImages(t, node); !slices.Equal(after, images) {
		t.Errorf("images before the failed load %v, after %v", images, after)
	}

	// With less free space than the image's files, the load is refused
	// before anything is streamed.
	dockerExec(t, node, "sh", "-c", "head -c "+strconv.FormatInt(free/2, 10)+" /dev/zero > /var/df-e2e-filler")
	_, err = berth(t, "load", "image", ref, "--name", name)
	if err == nil || !strings.Contains(err.Error(), "too little for "+ref) || !strings.Contains(err.Error(), "nothing was loaded") {
		t.Errorf("a load that cannot fit was not refused beforehand: %v", err)
	}
	dockerExec(t, node, "rm", "/var/df-e2e-filler")

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "after", Namespace: "default"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: versions.HelperImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", "exit 0"}}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new pod ran after the full disk", time.Minute, func() (bool, error) {
		got, err := client.CoreV1().Pods("default").Get(ctx, "after", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.Phase == corev1.PodSucceeded, nil
	})
}

func dockerExec(t *testing.T, node string, cmd ...string) string {
	t.Helper()
	out, err := exec.Command("docker", append([]string{"exec", node}, cmd...)...).Output()
	if err != nil {
		t.Fatalf("docker exec %s %v: %v", node, cmd, err)
	}
	return string(out)
}

// nodeFree returns the bytes free on a node's /var.
func nodeFree(t *testing.T, node string) int64 {
	t.Helper()
	out := strings.Fields(dockerExec(t, node, "df", "-B1", "--output=avail", "/var"))
	n, err := strconv.ParseInt(out[len(out)-1], 10, 64)
	if err != nil {
		t.Fatalf("df in %s: %v", node, err)
	}
	return n
}

// nodeImages lists the images in a node's containerd.
func nodeImages(t *testing.T, node string) []string {
	t.Helper()
	return strings.Fields(dockerExec(t, node, "ctr", "-n", "k8s.io", "images", "ls", "-q"))
}

// randomImage makes a one-layer image holding one file of size random
// bytes, and removes it when the test ends.
func randomImage(t *testing.T, ref string, size int64) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.CopyN(tw, rand.NewChaCha8([32]byte{1}), size)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	p := provider(t)
	if err := p.ImportImage(context.Background(), pr, ref, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.RemoveImage(context.Background(), ref) })
}

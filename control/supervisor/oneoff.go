package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// runOneOff runs a command to completion. Every child of PID 1 must be
// waited for by the reaper (a plain exec.Cmd.Wait would race with it and
// see ECHILD), so one-off commands go through here too. Output goes to an
// unlinked temporary file: an *os.File needs no copying goroutine that
// could still be writing after the exit is seen.
func (s *Supervisor) runOneOff(ctx context.Context, path string, args []string, stdin io.Reader) ([]byte, error) {
	outFile, err := os.CreateTemp("", "berth-run-")
	if err != nil {
		return nil, fmt.Errorf("creating output file: %w", err)
	}
	defer outFile.Close()
	_ = os.Remove(outFile.Name())

	cmd := exec.Command(path, args...)
	cmd.Stdout = outFile
	cmd.Stderr = outFile
	if stdin != nil {
		inFile, err := os.CreateTemp("", "berth-in-")
		if err != nil {
			return nil, fmt.Errorf("creating input file: %w", err)
		}
		defer inFile.Close()
		_ = os.Remove(inFile.Name())
		if _, err := io.Copy(inFile, stdin); err != nil {
			return nil, fmt.Errorf("buffering input: %w", err)
		}
		if _, err := inFile.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		cmd.Stdin = inFile
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	exited := s.reaper.watch(cmd.Process.Pid)
	var status syscall.WaitStatus
	select {
	case status = <-exited:
	case <-ctx.Done():
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return nil, ctx.Err()
	}
	if _, err := outFile.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	out, _ := io.ReadAll(outFile)
	if status.ExitStatus() != 0 || status.Signaled() {
		return out, fmt.Errorf("%s %v: %s: %s", path, args, describe(status), bytes.TrimSpace(out))
	}
	return out, nil
}

package create

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/cluster/progress"
)

// step is one named part of a create. Steps share a *state (what was made
// or learnt so far) and run in order; each has one job.
type step struct {
	// name is what the progress display shows while the step runs.
	name string
	run  func(ctx context.Context, s *state) error
	// undo removes what run made. It is called, newest first, for every
	// step that ran (the failing one included) when a later step fails
	// or the create is interrupted. nil: the step makes nothing.
	undo func(ctx context.Context, s *state) error
	// quiet steps are not shown (cheap checks that cannot take long).
	quiet bool
}

// runner runs steps, reporting each to the progress display, and undoes
// what was made when one fails. kind's create actions are the model; the
// difference is that berth undoes step by step instead of deleting by
// name, so a step that makes something new brings its own undo.
type runner struct {
	status progress.Reporter
	// retain skips the undo, for debugging a failed create.
	retain bool
}

// run executes steps in order. On failure or interrupt it undoes every
// step that ran, newest first, with a context that is not cancelled (an
// interrupted create must still clean up).
func (r runner) run(ctx context.Context, s *state, steps []step) error {
	var ran []step
	for _, st := range steps {
		ran = append(ran, st)
		var err error
		if st.quiet {
			err = st.run(ctx, s)
		} else {
			err = progress.Run(r.status, st.name, func() error { return st.run(ctx, s) })
		}
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			if r.retain {
				return err
			}
			if undoErr := r.undo(context.WithoutCancel(ctx), s, ran); undoErr != nil {
				return fmt.Errorf("%w\n(removing what was made also failed: %v)", err, undoErr)
			}
			return err
		}
	}
	return nil
}

func (r runner) undo(ctx context.Context, s *state, ran []step) error {
	var undos []step
	for i := len(ran) - 1; i >= 0; i-- {
		if ran[i].undo != nil {
			undos = append(undos, ran[i])
		}
	}
	if len(undos) == 0 {
		return nil
	}
	var errs []error
	done := r.status.Step("removing what was made")
	for _, st := range undos {
		if err := st.undo(ctx, s); err != nil {
			errs = append(errs, fmt.Errorf("undoing %q: %w", st.name, err))
		}
	}
	err := errors.Join(errs...)
	done(err)
	return err
}

package server

import (
	"context"
	"sync"

	"github.com/ferryci/ferry/internal/store"
)

// stepIndexSize bounds the pipelines a stepIndex holds; when it is reached
// the index starts over.
const stepIndexSize = 4096

// stepIndex caches the step IDs of pipelines by step name, so that an
// agent's reports about a step need not load the pipeline and its steps
// every time. A pipeline's steps never change after it is created, so
// entries never go stale; they are dropped when their job completes. It
// is safe for concurrent use.
type stepIndex struct {
	mu        sync.Mutex
	pipelines map[int64]*pipelineSteps
}

// pipelineSteps is the cached part of one pipeline.
type pipelineSteps struct {
	name string
	ids  map[string]int64
}

func newStepIndex() *stepIndex {
	return &stepIndex{pipelines: map[int64]*pipelineSteps{}}
}

// stepID returns the ID of the step of pipeline pipelineID with the given
// name, loading the pipeline from ps on a miss.
func (x *stepIndex) stepID(ctx context.Context, ps store.PipelineStore, pipelineID int64, name string) (int64, error) {
	id, _, err := x.step(ctx, ps, pipelineID, name)
	return id, err
}

// step returns the ID of the step of pipeline pipelineID with the given
// name, and the pipeline's name, loading the pipeline from ps on a miss.
func (x *stepIndex) step(ctx context.Context, ps store.PipelineStore, pipelineID int64, name string) (int64, string, error) {
	x.mu.Lock()
	e := x.pipelines[pipelineID]
	x.mu.Unlock()
	if e == nil {
		p, err := ps.Get(ctx, pipelineID)
		if err != nil {
			return 0, "", err
		}
		e = &pipelineSteps{name: p.Name, ids: make(map[string]int64, len(p.Steps))}
		for _, st := range p.Steps {
			e.ids[st.Name] = st.ID
		}
		x.mu.Lock()
		if len(x.pipelines) >= stepIndexSize {
			clear(x.pipelines)
		}
		x.pipelines[pipelineID] = e
		x.mu.Unlock()
	}
	id, ok := e.ids[name]
	if !ok {
		return 0, e.name, notFound("pipeline %q has no step %q", e.name, name)
	}
	return id, e.name, nil
}

// forget drops pipeline pipelineID.
func (x *stepIndex) forget(pipelineID int64) {
	x.mu.Lock()
	delete(x.pipelines, pipelineID)
	x.mu.Unlock()
}

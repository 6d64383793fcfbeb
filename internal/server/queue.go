package server

import (
	"net/http"
	"slices"
	"time"

	"github.com/ferryci/ferry/internal/api"
	"github.com/ferryci/ferry/internal/store"
)

// maxQueueEntries bounds the queue's answer.
const maxQueueEntries = 500

// listQueue answers the jobs that run and those that wait, oldest first,
// each with why it waits (administrators): what runs where, and why a
// pending job has not started.
func (s *Server) listQueue(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	agents, err := s.store.Agents.List(ctx)
	if err != nil {
		return err
	}
	names := make(map[int64]string, len(agents))
	for _, a := range agents {
		names[a.ID] = a.Name
	}
	var jobs []*store.Job
	for _, st := range []store.Status{store.StatusRunning, store.StatusPending, store.StatusBlocked} {
		js, err := s.store.Jobs.List(ctx, store.JobFilter{Status: st, Limit: maxQueueEntries})
		if err != nil {
			return err
		}
		jobs = append(jobs, js...)
	}
	slices.SortFunc(jobs, func(a, b *store.Job) int { return a.Queued.Compare(b.Queued) })
	if len(jobs) > maxQueueEntries {
		jobs = jobs[:maxQueueEntries]
	}
	running := map[int64]int{}
	for _, j := range jobs {
		if j.Status == store.StatusRunning {
			running[j.LeaseOwner]++
		}
	}
	type buildInfo struct {
		build *store.Build
		repo  *store.Repo
		pls   map[int64]*store.Pipeline
		state map[string]store.Status
	}
	builds := map[int64]*buildInfo{}
	now := time.Now()
	out := make([]*api.QueueEntry, 0, len(jobs))
	for _, j := range jobs {
		bi := builds[j.BuildID]
		if bi == nil {
			b, repo, err := s.store.Builds.GetWithRepo(ctx, j.BuildID)
			if err != nil {
				continue // removed since the list was read
			}
			pls, err := s.store.Pipelines.List(ctx, b.ID)
			if err != nil {
				return err
			}
			bi = &buildInfo{build: b, repo: repo, pls: map[int64]*store.Pipeline{}, state: map[string]store.Status{}}
			for _, p := range pls {
				bi.pls[p.ID] = p
				bi.state[p.Name] = p.Status
			}
			builds[j.BuildID] = bi
		}
		p := bi.pls[j.PipelineID]
		if p == nil {
			continue
		}
		jj := &api.Job{ID: j.ID, Status: j.Status, Labels: j.Labels, Attempts: j.Attempts, Canceled: j.Canceled,
			Error: j.Error, Queued: j.Queued, Started: j.Started, Finished: j.Finished}
		if jj.Labels == nil {
			jj.Labels = map[string]string{}
		}
		switch j.Status {
		case store.StatusPending:
			jj.WaitingReason = waitingReason(j.Labels, agents, running, now)
		case store.StatusBlocked:
			jj.WaitingReason = blockedReason(bi.build, p, bi.state)
		}
		e := &api.QueueEntry{Repo: bi.repo.Slug, Build: bi.build.Number, Pipeline: p.Name, PipelineNumber: p.Number, Job: jj}
		if j.Status == store.StatusRunning {
			e.Agent = names[j.LeaseOwner]
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

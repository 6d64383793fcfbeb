package trigger

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryci/ferry/internal/forge"
	"github.com/ferryci/ferry/internal/store"
)

// TestPollOfRemovedRepoLogsNoError removes a repo in the middle of its poll
// (`repo rm` while the mirror is fetched and the build is created): the
// poller notes it at INFO and logs no ERROR.
func TestPollOfRemovedRepoLogsNoError(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	origin := newGitRepo(t, root, "app")
	st := openStore(t)
	b := newBuilder(st)
	repo := createRepo(t, st, &store.Repo{Slug: "acme/app", GitURL: origin.URL(), PollInterval: 200 * time.Millisecond})
	b.fail = func(*Event) error {
		// The repo goes away before its build is stored.
		return st.Repos.Delete(context.Background(), repo.ID)
	}
	var logs syncLog
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p := NewPoller(st, b, forge.NewMirrors(t.TempDir()), logger)
	p.Tick = 50 * time.Millisecond
	runLoop(t, p.Run)

	waitFor(t, "the first poll's baseline", func() bool {
		refs, err := st.Repos.PollRefs(context.Background(), repo.ID)
		return err == nil && refs != nil
	})
	origin.Commit("A change", map[string]string{"a.txt": "a\n"})
	origin.Push("main")
	waitFor(t, "the poll that finds the repo removed", func() bool {
		return strings.Contains(logs.String(), "the repo was removed while it was polled")
	})
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("the poller logged an error for the removed repo:\n%s", logs.String())
	}
}

// syncLog is a log sink safe for concurrent writes.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

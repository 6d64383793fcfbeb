package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ferryci/ferry/internal/deploy/spec"
	"github.com/ferryci/ferry/internal/store"
)

// Event is what a notification says about a deployment.
type Event struct {
	Deployment  int64
	Service     string
	Environment string
	Release     string
	// State is the deployment's state: "started" or a final one.
	State   string
	Reason  string
	Creator string
	Time    time.Time
}

// Notifier sends one notification to url. Send is called from its own
// goroutine, at most notifyTimeout long; it must honour ctx.
type Notifier interface {
	Send(ctx context.Context, hc *http.Client, url string, ev *Event) error
}

var (
	notifiersMu sync.RWMutex
	notifiers   = map[string]Notifier{}
)

// RegisterNotifier makes a notifier available under name: each is one
// file with one call in its init. Registering a name twice panics.
func RegisterNotifier(name string, n Notifier) {
	notifiersMu.Lock()
	defer notifiersMu.Unlock()
	if notifiers[name] != nil {
		panic("deploy: notifier " + name + " registered twice")
	}
	notifiers[name] = n
}

func lookupNotifier(name string) Notifier {
	notifiersMu.RLock()
	defer notifiersMu.RUnlock()
	return notifiers[name]
}

// notifyTimeout bounds one notification.
const notifyTimeout = 10 * time.Second

// notify sends the environment's notifications about d in the background;
// failures are logged. Wait for them with o.sending.
func (o *Orchestrator) notify(env *spec.Environment, d *store.Deployment, state string) {
	ev := &Event{Deployment: d.ID, Service: d.Service, Environment: d.Environment, Release: d.ReleaseID, State: state,
		Reason: d.Reason, Creator: d.Creator, Time: o.cfg.Now().UTC()}
	for _, nt := range env.Notify {
		if len(nt.On) > 0 && !slices.Contains(nt.On, state) || len(nt.On) == 0 && state == "started" {
			continue
		}
		n := lookupNotifier(nt.Type)
		if n == nil {
			o.log.Error("unknown notifier", "type", nt.Type)
			continue
		}
		o.sending.Add(1)
		go func() {
			defer o.sending.Done()
			ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
			defer cancel()
			if err := n.Send(ctx, o.cfg.HTTPClient, nt.URL, ev); err != nil {
				o.log.Warn("sending a deploy notification", "type", nt.Type, "deployment", d.ID, "err", err)
			}
		}()
	}
}

// postJSON posts body to url and wants a 2xx answer.
func postJSON(ctx context.Context, hc *http.Client, url, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", url, res.Status)
	}
	return nil
}
